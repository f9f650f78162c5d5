"""Post-processing shared by every backend: resize outputs, threshold, colour and overlay."""

from collections.abc import Sequence
import functools

import cv2
import numpy as np

IGNORE_INDEX = 255
"""Label value of "no class": not annotated, or below the confidence threshold.

The default of the model file's `ignore_index` (docs/model_file.md), the value the exporter writes
and training leaves out of every loss and metric; the node uses the model's own value.
"""


@functools.lru_cache(maxsize=32)
def _nearest_exact_index(source: int, target: int) -> np.ndarray:
    """Source index of each target index: `min(floor((i + 0.5) * source / target), source - 1)`."""
    index = np.floor((np.arange(target, dtype=np.float64) + 0.5) * (source / target))
    index = np.minimum(index.astype(np.intp), source - 1)
    index.flags.writeable = False  # shared by every caller of the cache
    return index


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a label image (or any class map) to `size` = (height, width), nearest-exact.

    The one label-resizing convention of the project (the node, bag-eval, evaluation and export
    samples all call this): target pixel `i` takes source pixel
    `min(floor((i + 0.5) * source / target), source - 1)`, pixel centres aligned, exactly
    torch's `interpolate(mode='nearest-exact')` and ONNX `Resize(mode='nearest',
    coordinate_transformation_mode='half_pixel', nearest_mode='round_prefer_ceil')`.
    (cv2.INTER_NEAREST_EXACT approximates it with 16-bit fixed point and picks another source
    row or column for some pixels at ratios such as 512 -> 1080; plain INTER_NEAREST is shifted
    by half a pixel.) No new label value is ever made.

    Args:
        labels: `[H, W]` (any dtype; extra trailing axes are carried along).
        size: target (height, width).

    Returns:
        The labels at `size`; the input itself when it already has it.
    """
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0 or labels.ndim < 2:
        raise ValueError(f'cannot resize labels {labels.shape} to {height}x{width}')
    if labels.shape[:2] == (height, width):
        return labels
    rows = _nearest_exact_index(labels.shape[0], height)
    columns = _nearest_exact_index(labels.shape[1], width)
    # The gather along each row is the costly take (the row take copies whole rows), so it runs
    # on the smaller of the two heights: half the time of rows-first at 512 -> 1080.
    if height >= labels.shape[0]:
        return np.take(np.take(labels, columns, axis=1), rows, axis=0)
    return np.take(np.take(labels, rows, axis=0), columns, axis=1)


def resize_outputs(labels: np.ndarray, confidence: np.ndarray,
                   size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize one image's labels (nearest-exact) and confidence (bilinear) to `size`.

    Labels go through `resize_labels`; confidence through cv2.INTER_LINEAR (half-pixel centres,
    no antialiasing), the convention docs/model_file.md states.

    Args:
        labels: uint8 `[H, W]`.
        confidence: float32 `[H, W]`.
        size: target (height, width).

    Returns:
        (labels, confidence) at `size`; the inputs themselves when they already have it.
    """
    height, width = int(size[0]), int(size[1])
    if labels.shape != confidence.shape or labels.ndim != 2:
        raise ValueError(f'labels {labels.shape} and confidence {confidence.shape} must be the '
                         f'same HxW shape')
    if labels.shape == (height, width):
        return labels, confidence
    return (resize_labels(labels, (height, width)),
            cv2.resize(confidence, (width, height), interpolation=cv2.INTER_LINEAR))


def apply_threshold(labels: np.ndarray, confidence: np.ndarray, threshold: float,
                    ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Labels with `ignore_index` where confidence < `threshold` (a copy; 0 disables)."""
    if threshold <= 0:
        return labels
    return np.where(confidence < threshold, np.uint8(ignore_index), labels).astype(np.uint8)


def confidence_to_mono8(confidence: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] as uint8 0-255 (rounded, clipped), what nav2 consumes."""
    scaled = np.clip(confidence, 0.0, 1.0) * np.float32(255.0)
    return np.rint(scaled, out=scaled).astype(np.uint8)


class PaletteTable:
    """A class palette as a 256-entry colour table, built once and used for every frame.

    Label values without a palette entry (e.g. `IGNORE_INDEX`) are black in `colorize` and keep
    the image's own colour in `overlay`.

    Args:
        palette: one [r, g, b] (0-255) per class, index = label value; at most 256.

    Raises:
        ValueError: a palette of another shape or colours outside 0-255.
    """

    def __init__(self, palette: Sequence[Sequence[int]]) -> None:
        colours = np.asarray(palette, dtype=np.int64)
        if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) > 256:
            raise ValueError(f'palette must be up to 256 [r, g, b] colours, got shape '
                             f'{colours.shape}')
        if colours.size and (colours.min() < 0 or colours.max() > 255):
            raise ValueError('palette colours must be 0-255')
        self.num_colours = len(colours)
        self.lut = np.zeros((256, 3), np.uint8)
        self.lut[:self.num_colours] = colours

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Colour a label image: HxW uint8 -> HxWx3 uint8 RGB."""
        return self.lut[labels]

    def overlay(self, rgb: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
        """Blend the label colours over an image: `(1 - alpha) * rgb + alpha * colour`.

        Args:
            rgb: HxWx3 uint8 image.
            labels: HxW uint8 labels of the same size.
            alpha: weight of the colours, in [0, 1].

        Returns:
            HxWx3 uint8 RGB; pixels whose label has no colour keep the image's.
        """
        if rgb.shape[:2] != labels.shape or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'overlay needs an HxWx3 image and HxW labels of the same size, '
                             f'got {rgb.shape} and {labels.shape}')
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'overlay alpha must be in [0, 1], got {alpha}')
        rgb = np.ascontiguousarray(rgb)
        out = cv2.addWeighted(rgb, 1.0 - alpha, self.colorize(labels), alpha, 0.0)
        unlabelled = labels >= self.num_colours
        if unlabelled.any():
            out[unlabelled] = rgb[unlabelled]
        return out
