"""Dataset frames at the network input size, pre-processed exactly as the node does it.

Temperature fitting, INT8 calibration and the export parity check all feed the model file what the
node would feed it: the frame's bytes resized with `seg_kd_ros.preprocessing.resize_to_network`
(bilinear, uint8; normalisation is inside the graph); labels are resized with the project's one
label convention, `seg_kd_ros.postprocess.resize_labels` (nearest-exact).
"""

from collections.abc import Iterator

import numpy as np

from seg_kd_ros.postprocess import resize_labels
from seg_kd_ros.preprocessing import resize_to_network


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
        yield rgb, resize_labels(np.asarray(sample['label']), (height, width))


def network_batches(dataset, input_size: tuple[int, int], batch_size: int = 1,
                    max_images: int | None = None,
                    seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield `(frames uint8 [N, H, W, 3], labels uint8 [N, H, W])` batches at the network size.

    The frames are what the model file takes (docs/model_file.md); the last batch may be smaller
    than `batch_size`.
    """
    images, labels = [], []
    for rgb, label in network_frames(dataset, input_size, max_images, seed):
        images.append(rgb)
        labels.append(label)
        if len(images) == batch_size:
            yield np.stack(images), np.stack(labels)
            images, labels = [], []
    if images:
        yield np.stack(images), np.stack(labels)
