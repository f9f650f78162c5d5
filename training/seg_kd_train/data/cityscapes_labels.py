"""The 19 Cityscapes training classes, their palette, and the labelId <-> trainId tables.

Names and colours come from the package's classes file, `config/cityscapes_classes.yaml`, read by
the runtime's own reader (`seg_kd_ros.model_metadata.load_classes_file`), the same file a user can
give the node as `classes_file`; the labelId tables from the official label table in
`cityscapesscripts.helpers.labels` (a plain module of namedtuples: importing it has no side
effects). Nothing is typed in by hand; training/tests/test_data_labels.py checks the two agree.
"""

import os
from pathlib import Path
import sys

from cityscapesscripts.helpers import labels as _cs_labels
import numpy as np

import seg_kd_ros
from seg_kd_ros.model_metadata import load_classes_file
from seg_kd_ros.postprocess import IGNORE_INDEX

_CITYSCAPES_LABELS = _cs_labels.labels

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean in [0, 1] units, the normalisation every model in the project uses."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation in [0, 1] units."""


def shipped_classes_file(name: str = 'cityscapes_classes.yaml') -> Path:
    """A classes file shipped in the seg_kd_ros package's `config/`.

    Looked up beside the package's source (a checkout or an editable install), then in the
    installed share folders (`<prefix>/share/seg_kd_ros/config`: pip's prefix, then the ament
    prefixes of a colcon install).

    Raises:
        FileNotFoundError: in none of them, naming the places searched.
    """
    prefixes = [sys.prefix, *filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep))]
    places = [Path(seg_kd_ros.__file__).resolve().parents[1] / 'config']
    places += [Path(p) / 'share' / 'seg_kd_ros' / 'config' for p in prefixes]
    for place in places:
        if (place / name).is_file():
            return place / name
    raise FileNotFoundError(f'{name} is in none of {", ".join(map(str, places))}; reinstall '
                            f'seg_kd_ros (its config/ folder holds the file)')


def _load_classes() -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    names, palette = load_classes_file(shipped_classes_file())
    return tuple(names), tuple((int(r), int(g), int(b)) for r, g, b in palette)


CITYSCAPES_CLASSES, CITYSCAPES_PALETTE = _load_classes()
"""Class names, index = trainId (0 road ... 18 bicycle), and one RGB colour (0-255) each."""

NUM_CLASSES = len(CITYSCAPES_CLASSES)

TRAIN_IDS: dict[str, int] = {name: i for i, name in enumerate(CITYSCAPES_CLASSES)}
"""trainId by class name ('road' -> 0 ... 'bicycle' -> 18)."""

_TRAIN_LABELS = sorted(
    (lab for lab in _CITYSCAPES_LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda x: x.trainId
)


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

