"""BDD100K semantic segmentation (10k images, 19 Cityscapes trainIds, 255 ignore).

On-disk layout::

    <root>/images/10k/<split>/<name>.jpg
    <root>/labels/sem_seg/masks/<split>/<name>.png

`<root>` may be the `bdd100k` folder itself or the folder holding it. The test split has no
labels (all 255). The segmentation subset carries no weather tags, so every sample has
condition 'mixed'.
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

BDD100K_SPLITS = ('train', 'val', 'test')

EXPECTED_LAYOUT = """\
  <root>/images/10k/<split>/<name>.jpg
  <root>/labels/sem_seg/masks/<split>/<name>.png
  (<root> may also contain these under bdd100k/)"""


class Bdd100kDataset(SegDataset):
    """BDD100K semantic segmentation.

    Args:
        root: the `bdd100k` folder or its parent.
        split: 'train', 'val' or 'test'.
        transform: callable on the sample dict, or None.

    Raises:
        DatasetLayoutError: the root does not match the layout or an image has no mask.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = 'train',
        transform: Callable[[dict], dict] | None = None,
    ):
        super().__init__('bdd100k', transform)
        check_split('BDD100K', split, BDD100K_SPLITS)
        root = Path(root)
        self.root = root / 'bdd100k' if (root / 'bdd100k' / 'images').is_dir() else root
        self.split = split
        img_dir = self.root / 'images' / '10k' / split
        mask_dir = self.root / 'labels' / 'sem_seg' / 'masks' / split
        images = sorted(img_dir.glob('*.jpg'))
        needs_labels = split != 'test'
        if not images or (needs_labels and not mask_dir.is_dir()):
            found = describe_dir(img_dir if not images else mask_dir)
            raise layout_error('BDD100K', root, EXPECTED_LAYOUT, found)
        for img in images:
            label = None
            if needs_labels:
                label = mask_dir / (img.stem + '.png')
                if not label.is_file():
                    raise DatasetLayoutError(f'BDD100K: image {img} has no mask {label}')
            self.records.append(SampleRecord(img, label, 'mixed'))
