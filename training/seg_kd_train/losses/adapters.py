"""Trainable adapters that map a student tap to a teacher tap (channels, then spatial size)."""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812


class Adapter(nn.Module):
    """A 1x1 convolution (+ optional BatchNorm) from student to teacher channels, then a resize.

    Trained with the student and thrown away afterwards: adapters live in the distiller, never in
    the student's weights file.

    Args:
        in_channels: student tap channels.
        out_channels: teacher tap channels.
        batch_norm: add a BatchNorm2d after the convolution.
        project: use the 1x1 convolution; if False the adapter only resizes (channels must match).
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False,
                 project: bool = True):
        super().__init__()
        if not project and in_channels != out_channels:
            raise ValueError(f'adapter without projection needs equal channels, got '
                             f'{in_channels} -> {out_channels}')
        layers: list[nn.Module] = []
        if project:
            layers.append(nn.Conv2d(in_channels, out_channels, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
        self.proj = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Project `x` and resize it bilinearly to `size` (h, w) when given and different."""
        x = self.proj(x)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        return x
