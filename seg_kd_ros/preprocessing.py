"""Pre-processing shared by every backend: resize to the network input and normalise."""

from collections.abc import Sequence

import cv2
import numpy as np


def resize_to_network(rgb: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Resize an HxWx3 image to the network input size (bilinear, cv2.INTER_LINEAR).

    Args:
        rgb: HxWxC uint8 image.
        input_size: (height, width) of the network input.

    Returns:
        The image at `input_size`; the input itself (no copy) when it already has that size.
    """
    height, width = int(input_size[0]), int(input_size[1])
    if rgb.shape[:2] == (height, width):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def _lookup_tables(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    values = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([(values - m) / s for m, s in zip(mean, std, strict=True)]).astype(np.float32)


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Turn uint8 RGB images into the network's float32 NCHW input, `(pixel / 255 - mean) / std`.

    The formula is evaluated once per possible byte value (in float64, rounded to float32) and
    applied by table look-up, which is both faster and more exact than float32 arithmetic.

    Args:
        images: uint8 `[N, H, W, 3]` (or one `[H, W, 3]` image, treated as N = 1).
        mean: per-channel mean in [0, 1] units, RGB.
        std: per-channel standard deviation in [0, 1] units, RGB.

    Returns:
        float32 `[N, 3, H, W]`, C-contiguous.

    Raises:
        ValueError: input that is not uint8 with 3 channels.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f'normalise needs uint8 [N, H, W, 3] RGB images, got shape '
                         f'{images.shape} dtype {images.dtype}')
    tables = _lookup_tables(mean, std)
    out = np.empty((images.shape[0], 3, images.shape[1], images.shape[2]), np.float32)
    for c in range(3):
        np.take(tables[c], images[..., c], out=out[:, c])
    return out
