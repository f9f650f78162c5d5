"""Cityscapes fine annotations, labelIds mapped to the 19 trainIds by the official table.

On-disk layout::

    <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png
                                 (<name>_gtFine_labelTrainIds.png with label_type='trainIds')
"""

from collections.abc import Callable
from pathlib import Path

from seg_kd_train.data.base import (
    DatasetLayoutError,
    SampleRecord,
    SegDataset,
    check_split,
    describe_dir,
    layout_error,
)
from seg_kd_train.data.cityscapes_labels import label_ids_to_train_ids

CITYSCAPES_SPLITS = ('train', 'val', 'test')
IMAGE_SUFFIX = '_leftImg8bit.png'
LABEL_SUFFIXES = {'labelIds': '_gtFine_labelIds.png', 'trainIds': '_gtFine_labelTrainIds.png'}

EXPECTED_LAYOUT = """\
  <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
  <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png"""


class CityscapesDataset(SegDataset):
    """Cityscapes semantic segmentation (fine labels); every sample has condition 'clear'.

    Args:
        root: dataset root holding `leftImg8bit/` and `gtFine/`.
        split: 'train', 'val' or 'test'.
        transform: callable on the sample dict, or None.
        label_type: 'labelIds' (official files, mapped to trainIds) or 'trainIds' (files made by
            cityscapesscripts' createTrainIdLabelImgs, read as they are).

    Raises:
        DatasetLayoutError: the root does not match the layout or an image has no label file.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = 'train',
        transform: Callable[[dict], dict] | None = None,
        label_type: str = 'labelIds',
    ):
        super().__init__('cityscapes', transform)
        check_split('Cityscapes', split, CITYSCAPES_SPLITS)
        if label_type not in LABEL_SUFFIXES:
            raise ValueError(f'Cityscapes: label_type must be one of {list(LABEL_SUFFIXES)}')
        self.root = Path(root)
        self.split = split
        self.label_type = label_type
        img_dir = self.root / 'leftImg8bit' / split
        gt_dir = self.root / 'gtFine' / split
        images = sorted(img_dir.glob('*/*' + IMAGE_SUFFIX))
        if not images or not gt_dir.is_dir():
            found = describe_dir(img_dir if not images else gt_dir)
            raise layout_error('Cityscapes', self.root, EXPECTED_LAYOUT, found)
        for img in images:
            stem = img.name[: -len(IMAGE_SUFFIX)]
            label = gt_dir / img.parent.name / (stem + LABEL_SUFFIXES[label_type])
            if not label.is_file():
                raise DatasetLayoutError(f'Cityscapes: image {img} has no label file {label}')
            self.records.append(SampleRecord(img, label, 'clear'))

    def decode_label(self, raw, record):
        """Map labelIds to trainIds (identity for label_type='trainIds')."""
        return label_ids_to_train_ids(raw) if self.label_type == 'labelIds' else raw
