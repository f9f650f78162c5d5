"""The deploy head in PyTorch: what a model file computes, as an `nn.Module` (docs/model_file.md).

`DeployHead` wraps a segmentation network (`forward(x) -> logits [N, C, H, W]`) so that it maps the
camera's bytes to what the node publishes: uint8 RGB `[N, H, W, 3]` in, labels (argmax, uint8) and
confidence (the max softmax probability of `logits / temperature`) out. It is the `.pt2` program's
forward and the PyTorch side of every parity check; the `.onnx` files get the same arithmetic from
`seg_kd_train.export.onnx_head.attach_deploy_head` (graph surgery, shared with foreign models).
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from seg_kd_train.export.metadata import build_metadata, class_names_and_palette
from seg_kd_train.export.onnx_head import normalisation_constants

__all__ = ['DeployHead', 'Normalise', 'build_metadata', 'class_names_and_palette']


class Normalise(nn.Module):
    """uint8 RGB `[N, H, W, 3]` -> float32 `[N, 3, H, W]`, `(x - 255 mean) * (1 / (255 std))`.

    The float32 constants are the ONNX head's (`onnx_head.normalisation_constants`), so the two
    compute bit-identical network inputs.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean255, scale = normalisation_constants(mean, std)
        self.register_buffer('mean255', torch.from_numpy(mean255), persistent=False)
        self.register_buffer('scale', torch.from_numpy(scale), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 NHWC batch."""
        return (image.permute(0, 3, 1, 2).float() - self.mean255) * self.scale


class DeployHead(nn.Module):
    """Normalisation, a segmentation network, argmax and calibrated max-softmax confidence.

    Shape:
        - image: uint8 `[N, H, W, 3]`, RGB, the camera's bytes.
        - labels: uint8 `[N, H, W]`, the argmax over classes.
        - confidence: float32 `[N, H, W]` in [0, 1], `max softmax(logits / temperature)`.
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

        if not temperature > 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.normalise = Normalise(IMAGENET_MEAN if mean is None else mean,
                                   IMAGENET_STD if std is None else std)
        self.model = model
        self.temperature = float(temperature)
        inv = np.float32(1.0 / float(temperature))  # float32, as the ONNX head stores it
        self.register_buffer('inv_temperature', torch.tensor(inv), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(labels, confidence)` for a uint8 NHWC image batch."""
        return self.head(self.model(self.normalise(image)), image.shape[1:3])

    def head(self, logits: torch.Tensor,
             size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and confidence from logits at the input size `size` (H, W)."""
        if tuple(logits.shape[-2:]) != tuple(size):
            raise ValueError(f'model returned logits of spatial size {tuple(logits.shape[-2:])}, '
                             f'expected the input size {tuple(size)}')
        labels = logits.argmax(dim=1).to(torch.uint8)
        # max softmax(z / T) = 1 / sum_c exp((z_c - max z) / T): the same value without a full
        # softmax over the class axis, which ONNX Runtime on CPU runs ~10x slower (NCHW layout).
        logits = logits.float()
        top = logits.amax(dim=1, keepdim=True)
        confidence = torch.exp((logits - top) * self.inv_temperature).sum(dim=1).reciprocal()
        return labels, confidence
