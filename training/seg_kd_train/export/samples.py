"""Dataset frames at the network input size, pre-processed exactly as the node does it.

Temperature fitting, INT8 calibration and the export parity check all feed the network what the
node would feed it: the frame resized with `seg_kd_ros.preprocessing.resize_to_network` (bilinear)
and normalised with `normalise`; labels are resized with nearest-neighbour.
"""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from seg_kd_ros.preprocessing import normalise, resize_to_network


def open_split(root: str | Path, split: str = 'val'):
    """Open a dataset split in the ACDC layout (what `seg-kd synth` writes), untransformed."""
    from seg_kd_train.data.acdc import AcdcDataset

    return AcdcDataset(str(root), split=split, transform=None)


def pick_indices(length: int, max_images: int | None, seed: int = 0) -> list[int]:
    """Up to `max_images` indices spread over the split (a seeded random subset, sorted)."""
    if max_images is None or max_images >= length:
        return list(range(length))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(length, size=max_images, replace=False))


def network_frames(dataset, input_size: tuple[int, int], max_images: int | None = None,
                   seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield `(rgb uint8 [H, W, 3], label uint8 [H, W])` at the network input size.

    Args:
        dataset: a dataset whose untransformed samples hold `image` and `label` numpy arrays.
        input_size: network `(height, width)`.
        max_images: use at most this many frames (a seeded random subset).
        seed: seed of the subset.
    """
    height, width = int(input_size[0]), int(input_size[1])
    for index in pick_indices(len(dataset), max_images, seed):
        sample = dataset[index]
        rgb = resize_to_network(np.ascontiguousarray(sample['image']), (height, width))
        label = np.asarray(sample['label'])
        if label.shape != (height, width):
            label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
        yield rgb, label


def network_batches(dataset, input_size: tuple[int, int], mean, std, batch_size: int = 1,
                    max_images: int | None = None,
                    seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield `(images float32 [N, 3, H, W] normalised, labels uint8 [N, H, W])` batches.

    The last batch may be smaller than `batch_size`.
    """
    images, labels = [], []
    for rgb, label in network_frames(dataset, input_size, max_images, seed):
        images.append(rgb)
        labels.append(label)
        if len(images) == batch_size:
            yield normalise(np.stack(images), mean, std), np.stack(labels)
            images, labels = [], []
    if images:
        yield normalise(np.stack(images), mean, std), np.stack(labels)
