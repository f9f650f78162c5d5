"""Datasets (ACDC, Cityscapes, BDD100K, their concatenation), label tables and synthetic data.

`build_dataset(name, root, split)` is the one way to open a dataset by name.

Listing and reading data needs numpy and cv2 only; `seg_kd_train.data.transforms` (tensors) imports
torch, and `seg_kd_train.data.synth` holds the synthetic adverse-weather generator.
"""

from seg_kd_train.data.acdc import ACDC_CONDITIONS, AcdcDataset
from seg_kd_train.data.base import DatasetLayoutError, DatasetReadError, SegDataset
from seg_kd_train.data.bdd100k import Bdd100kDataset
from seg_kd_train.data.cityscapes import CityscapesDataset
from seg_kd_train.data.cityscapes_labels import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CLASSES,
)
from seg_kd_train.data.concat import ConcatSegDataset
from seg_kd_train.data.factory import DATASETS, build_dataset, concat_datasets

__all__ = [
    'ACDC_CONDITIONS',
    'AcdcDataset',
    'Bdd100kDataset',
    'CITYSCAPES_CLASSES',
    'CITYSCAPES_PALETTE',
    'CityscapesDataset',
    'ConcatSegDataset',
    'DATASETS',
    'DatasetLayoutError',
    'DatasetReadError',
    'IGNORE_INDEX',
    'IMAGENET_MEAN',
    'IMAGENET_STD',
    'NUM_CLASSES',
    'SegDataset',
    'build_dataset',
    'concat_datasets',
]
