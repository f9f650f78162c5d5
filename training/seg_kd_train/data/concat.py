"""Several segmentation datasets read as one (e.g. ACDC + Cityscapes + BDD100K for training)."""

import bisect
from collections.abc import Callable, Sequence
import itertools


class ConcatSegDataset:
    """Concatenation of datasets that return sample dicts.

    Each sample keeps its own `dataset` and `condition`; its `index` becomes the global index, so a
    seeded transform draws different augmentations for samples of different parts.

    Args:
        datasets: the parts, in order; each with `__len__`, `load(i)` and `conditions`.
        transform: applied to every sample (the parts' own transforms are bypassed when this is
            set), or None to use each part's own.
    """

    def __init__(self, datasets: Sequence, transform: Callable[[dict], dict] | None = None):
        if not datasets:
            raise ValueError('ConcatSegDataset needs at least one dataset')
        self.datasets = list(datasets)
        self.transform = transform
        self.cumulative = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative[-1]

    @property
    def conditions(self) -> list[str]:
        """One condition per sample, in order."""
        return [c for d in self.datasets for c in d.conditions]

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        part = bisect.bisect_right(self.cumulative, index)
        start = self.cumulative[part - 1] if part else 0
        return part, index - start

    def load(self, index: int) -> dict:
        """Read sample `index` without any transform; `index` in the sample is the global one."""
        part, local = self._locate(index)
        sample = self.datasets[part].load(local)
        sample['index'] = index % len(self)
        return sample

    def __getitem__(self, index: int) -> dict:
        """Sample dict of the part that holds `index` (see `SegDataset.__getitem__`)."""
        sample = self.load(index)
        transform = self.transform
        if transform is None:
            transform = self.datasets[self._locate(index)[0]].transform
        return transform(sample) if transform is not None else sample
