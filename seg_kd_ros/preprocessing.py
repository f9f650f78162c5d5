"""Pre-processing shared by every backend: resize the frame to the network input size.

That is all the node does to a frame's pixels: normalisation (and the layout change to NCHW) is
inside the model file's graph (docs/model_file.md, format 2), so the camera's bytes go to the
backend as they are and the node does no per-pixel float work.
"""

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
