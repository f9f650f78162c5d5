"""ACDC (Adverse Conditions Dataset with Correspondences, Sakaridis et al. ICCV 2021).

On-disk layout (the official archives unpacked; `seg-kd synth` writes the same)::

    <root>/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
    <root>/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png
                                             <name>_gt_labelIds.png
                                             <name>_gt_invIds.png      (1 = invalid region)

`<root>` may also be the folder holding the archives' top folders
(`rgb_anon_trainvaltest/rgb_anon`, `gt_trainval/gt`). Test labels are withheld: the test split
reads images only and its labels are all 255.
"""

from collections.abc import Callable, Sequence
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

ACDC_CONDITIONS = ('fog', 'night', 'rain', 'snow')
ACDC_SPLITS = ('train', 'val', 'test')
IMAGE_SUFFIX = '_rgb_anon.png'
LABEL_SUFFIXES = {'trainIds': '_gt_labelTrainIds.png', 'labelIds': '_gt_labelIds.png'}
INVALID_SUFFIX = '_gt_invIds.png'

EXPECTED_LAYOUT = """\
  <root>/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
  <root>/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png (and _gt_labelIds.png,
      _gt_invIds.png)
  (or <root>/rgb_anon_trainvaltest/rgb_anon/... and <root>/gt_trainval/gt/...)"""


def _find_dir(root: Path, candidates: Sequence[str]) -> Path | None:
    for rel in candidates:
        if (root / rel).is_dir():
            return root / rel
    return None


class AcdcDataset(SegDataset):
    """ACDC semantic segmentation, one or several conditions.

    Args:
        root: dataset root (see the module docstring for the layout).
        split: 'train', 'val' or 'test'.
        conditions: conditions to read; any subset of fog, night, rain, snow (the synthetic data
            may also hold 'clear').
        transform: callable on the sample dict (e.g. `TrainTransform`), or None.
        label_type: 'trainIds' reads `_gt_labelTrainIds.png`; 'labelIds' reads `_gt_labelIds.png`
            and maps it to trainIds with the official Cityscapes table.
        ignore_invalid: set pixels marked in `_gt_invIds.png` to 255 (off by default: the official
            ACDC mIoU counts them).

    Raises:
        DatasetLayoutError: the root does not match the layout, a condition/split folder is
            missing or empty, or an image has no label file (the message names it).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = 'train',
        conditions: Sequence[str] = ACDC_CONDITIONS,
        transform: Callable[[dict], dict] | None = None,
        label_type: str = 'trainIds',
        ignore_invalid: bool = False,
    ):
        super().__init__('acdc', transform)
        check_split('ACDC', split, ACDC_SPLITS)
        if label_type not in LABEL_SUFFIXES:
            raise ValueError(f'ACDC: label_type must be one of {list(LABEL_SUFFIXES)}')
        if isinstance(conditions, str):
            conditions = (conditions,)
        if not conditions:
            raise ValueError('ACDC: conditions must name at least one condition')
        self.root = Path(root)
        self.split = split
        self.label_type = label_type
        self.ignore_invalid = ignore_invalid
        img_root = _find_dir(self.root, ('rgb_anon', 'rgb_anon_trainvaltest/rgb_anon'))
        gt_root = _find_dir(self.root, ('gt', 'gt_trainval/gt'))
        needs_labels = split != 'test'
        if img_root is None or (needs_labels and gt_root is None):
            raise layout_error('ACDC', self.root, EXPECTED_LAYOUT, describe_dir(self.root))
        for cond in conditions:
            self.records.extend(self._list_condition(img_root, gt_root, cond, needs_labels))

    def _list_condition(
        self, img_root: Path, gt_root: Path | None, cond: str, needs_labels: bool
    ) -> list[SampleRecord]:
        img_dir = img_root / cond / self.split
        images = sorted(img_dir.glob('*/*' + IMAGE_SUFFIX))
        if not images:
            raise layout_error(
                'ACDC', self.root, EXPECTED_LAYOUT,
                f'no <sequence>/*{IMAGE_SUFFIX} for condition {cond!r}, split {self.split!r}: '
                + describe_dir(img_dir),
            )
        records = []
        for img in images:
            label = invalid = None
            if needs_labels or (gt_root is not None and (gt_root / cond / self.split).is_dir()):
                stem = img.name[: -len(IMAGE_SUFFIX)]
                gt_dir = gt_root / cond / self.split / img.parent.name
                label = gt_dir / (stem + LABEL_SUFFIXES[self.label_type])
                if not label.is_file():
                    raise DatasetLayoutError(f'ACDC: image {img} has no label file {label}')
                if self.ignore_invalid:
                    invalid = gt_dir / (stem + INVALID_SUFFIX)
                    if not invalid.is_file():
                        raise DatasetLayoutError(
                            f'ACDC: ignore_invalid is set but {invalid} does not exist'
                        )
            records.append(SampleRecord(img, label, cond, invalid))
        return records

    def decode_label(self, raw, record):
        """Map labelIds to trainIds when reading `_gt_labelIds.png`."""
        return label_ids_to_train_ids(raw) if self.label_type == 'labelIds' else raw
