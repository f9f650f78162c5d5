"""The one way to open a dataset by name: training, evaluation, make-bag and export calibration.

A recipe's `data` section, `seg-kd eval --dataset`, `seg-kd make-bag --dataset` and the export's
calibration split all name a dataset layout and a root; this module turns them into a dataset, and
several of them into one (`ConcatSegDataset`) for a training set with extra data.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

from seg_kd_train.data.acdc import AcdcDataset
from seg_kd_train.data.base import SegDataset
from seg_kd_train.data.bdd100k import Bdd100kDataset
from seg_kd_train.data.cityscapes import CityscapesDataset
from seg_kd_train.data.concat import ConcatSegDataset

DATASETS = ('acdc', 'cityscapes', 'bdd100k')
"""Dataset layouts by name; the synthetic data (`seg-kd synth`) is written in the ACDC layout."""


def build_dataset(name: str, root: str | Path, split: str,
                  conditions: Sequence[str] | None = None,
                  transform: Callable[[dict], dict] | None = None,
                  label_type: str | None = None) -> SegDataset:
    """Open one split of a dataset.

    Args:
        name: 'acdc' (also the synthetic data), 'cityscapes' or 'bdd100k'.
        root: the dataset's root folder.
        split: 'train', 'val' or 'test'.
        conditions: ACDC conditions to read (None: fog, night, rain and snow). Cityscapes and
            BDD100K have none, so they take None only.
        transform: callable on each sample dict, or None for the raw uint8 arrays.
        label_type: 'trainIds' or 'labelIds' label files (ACDC and Cityscapes); None: the
            dataset's usual ones (ACDC trainIds, Cityscapes labelIds).

    Raises:
        ValueError: an unknown name, or conditions for a dataset without them.
        DatasetLayoutError: the root does not hold the layout (the message shows the expected one).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    labels = {} if label_type is None else {'label_type': label_type}
    if name == 'acdc':
        kwargs = {} if conditions is None else {'conditions': tuple(conditions)}
        return AcdcDataset(root, split, transform=transform, **kwargs, **labels)
    if conditions is not None:
        raise ValueError(f'conditions ({", ".join(conditions)}) apply to acdc only; {name} has '
                         f'none')
    if name == 'cityscapes':
        return CityscapesDataset(root, split, transform, **labels)
    if label_type is not None:
        raise ValueError('label_type applies to acdc and cityscapes; bdd100k has one kind')
    return Bdd100kDataset(root, split, transform)


def concat_datasets(parts: Sequence) -> SegDataset | ConcatSegDataset:
    """Several datasets read as one, in order (one part is returned as it is)."""
    return parts[0] if len(parts) == 1 else ConcatSegDataset(parts)
