"""Data for the training loop: a recipe's datasets and a resumable, DDP-aware sample order.

The order of training samples is a pure function of (seed, position in the stream): epoch e uses
the permutation drawn from a generator seeded with (seed, e), and every sample's augmentation is
drawn from a generator seeded with (seed, epoch, index). Resuming at step k therefore continues
with exactly the samples and crops an uninterrupted run would have used, whatever the number of
DataLoader workers.
"""

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from seg_kd_train.config import DataConfig


def training_set(cfg: DataConfig):
    """The recipe's training split, untransformed, with the `extra_train` datasets appended."""
    from seg_kd_train.data import build_dataset, concat_datasets

    parts = [build_dataset(cfg.dataset, cfg.root, cfg.train_split, cfg.conditions)]
    parts += [build_dataset(e.dataset, e.root, e.split, e.conditions) for e in cfg.extra_train]
    return concat_datasets(parts)


def validation_set(cfg: DataConfig, transform=None):
    """The recipe's validation split (of its own dataset only)."""
    from seg_kd_train.data import build_dataset

    return build_dataset(cfg.dataset, cfg.root, cfg.val_split, cfg.conditions, transform)


class KeyedTrainDataset(Dataset):
    """Training samples addressed by (epoch, index) keys, each with its own seeded augmentation.

    Args:
        base: a dataset without transform (uint8 image, uint8 label).
        cfg: the recipe's data section (crop size, scale range, flip, jitter, weather).
        seed: base seed of the augmentation.
    """

    def __init__(self, base, cfg: DataConfig, seed: int):
        from seg_kd_train.data.transforms import TrainTransform

        self.base = base
        self.seed = int(seed)
        self.transform = TrainTransform(
            crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range),
            hflip_prob=cfg.hflip_prob, jitter=tuple(cfg.jitter), jitter_prob=cfg.jitter_prob,
            weather_prob=cfg.weather_prob, weather_conditions=tuple(cfg.weather_conditions))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        """Sample `index` in epoch `epoch`, augmented: image [3, H, W] float, label [H, W] long."""
        from seg_kd_train.data.transforms import to_tensor

        epoch, index = key
        sample = self.base[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        image, label = self.transform.augment(sample['image'], sample['label'], rng)
        image, label = to_tensor(image, label, self.transform.mean, self.transform.std)
        return {'image': image, 'label': label, 'condition': sample['condition']}


class ResumableSampler(Sampler):
    """An endless stream of (epoch, index) keys that can start at any global micro-batch.

    Global micro-batch k holds the samples k*B*W ... (k+1)*B*W - 1 of the stream (B the per-process
    batch, W the number of processes); process r reads its slice r*B ... (r+1)*B - 1 of it.

    Args:
        size: number of samples in the dataset.
        batch_size: per-process batch size B.
        seed: seed of the per-epoch permutations.
        start_batch: first global micro-batch to produce (steps done x gradient accumulation).
        rank: this process's rank r.
        world_size: number of processes W.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        if size < 1:
            raise ValueError('the training set is empty')
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self._perm_epoch = -1
        self._perm = np.empty(0, np.int64)

    def key(self, position: int) -> tuple[int, int]:
        """The (epoch, index) key at a position of the global stream."""
        epoch, offset = divmod(position, self.size)
        if epoch != self._perm_epoch:
            generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._perm = torch.randperm(self.size, generator=generator).numpy()
            self._perm_epoch = epoch
        return epoch, int(self._perm[offset])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        b, w = self.batch_size, self.world_size
        k = self.start_batch
        while True:
            first = k * b * w + self.rank * b
            for j in range(b):
                yield self.key(first + j)
            k += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it for len(loader)
        return 2 ** 62


def collate(samples: list[dict]) -> dict:
    """Stack images and labels; keep conditions as a list."""
    return {
        'image': torch.stack([s['image'] for s in samples]),
        'label': torch.stack([s['label'] for s in samples]),
        'condition': [s['condition'] for s in samples],
    }
