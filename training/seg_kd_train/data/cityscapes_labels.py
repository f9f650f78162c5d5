"""The 19 Cityscapes training classes, their palette, and the labelId <-> trainId tables.

Everything is derived from the official label table in `cityscapesscripts.helpers.labels`
(a plain module of namedtuples: importing it has no side effects), never typed in by hand.
"""

from cityscapesscripts.helpers import labels as _cs_labels
import numpy as np

_CITYSCAPES_LABELS = _cs_labels.labels

IGNORE_INDEX = 255
"""Label value for pixels that belong to no training class (and are left out of every metric)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean in [0, 1] units, the normalisation every model in the project uses."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation in [0, 1] units."""

_TRAIN_LABELS = sorted(
    (lab for lab in _CITYSCAPES_LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda x: x.trainId
)

CITYSCAPES_CLASSES: tuple[str, ...] = tuple(lab.name for lab in _TRAIN_LABELS)
"""Class names, index = trainId (0 road ... 18 bicycle)."""

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    tuple(int(c) for c in lab.color) for lab in _TRAIN_LABELS
)
"""One RGB colour (0-255) per trainId, the official Cityscapes colours."""

NUM_CLASSES = len(CITYSCAPES_CLASSES)


def _build_label_to_train() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in _CITYSCAPES_LABELS:
        if 0 <= lab.id < 256:
            lut[lab.id] = lab.trainId if 0 <= lab.trainId < IGNORE_INDEX else IGNORE_INDEX
    return lut


def _build_train_to_label() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)  # 255 and anything unknown -> 0 'unlabeled'
    for lab in _TRAIN_LABELS:
        lut[lab.trainId] = lab.id
    return lut


LABEL_ID_TO_TRAIN_ID = _build_label_to_train()
"""uint8 lookup table of 256 entries: Cityscapes labelId -> trainId (255 for ignored ids)."""

TRAIN_ID_TO_LABEL_ID = _build_train_to_label()
"""uint8 lookup table of 256 entries: trainId -> labelId (255 and unknown -> 0 'unlabeled')."""

if len(set(LABEL_ID_TO_TRAIN_ID[TRAIN_ID_TO_LABEL_ID[:NUM_CLASSES]])) != NUM_CLASSES:
    raise RuntimeError('cityscapesscripts label table: trainIds are not a bijection')


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes labelId image to trainIds (ignored ids become 255).

    Args:
        label_ids: integer array of labelIds, any shape.

    Returns:
        uint8 array of the same shape.
    """
    return LABEL_ID_TO_TRAIN_ID[np.asarray(label_ids).astype(np.uint8, copy=False)]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a trainId image to Cityscapes labelIds (255 becomes 0 'unlabeled')."""
    return TRAIN_ID_TO_LABEL_ID[np.asarray(train_ids).astype(np.uint8, copy=False)]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Colour a trainId image with the Cityscapes palette (255 and unknown ids black).

    Args:
        train_ids: HxW integer array.

    Returns:
        HxWx3 uint8 RGB image.
    """
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = np.asarray(CITYSCAPES_PALETTE, dtype=np.uint8)
    return lut[np.asarray(train_ids).astype(np.uint8, copy=False)]
