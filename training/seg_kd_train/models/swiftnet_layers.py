"""SwiftNet's decoder pieces: BN-ReLU-conv units, spatial pyramid pooling and upsampling modules.

Written from Oršić et al., "In Defense of Pre-trained ImageNet Architectures for Real-time Semantic
Segmentation of Road-driving Images" (CVPR 2019); layer sizes checked against the authors' code.
"""

from collections.abc import Sequence

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812


class BNReluConv(nn.Sequential):
    """Pre-activation unit: BatchNorm, ReLU, then a k x k (optionally separable) convolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        k: kernel size (padding k // 2 keeps the size).
        bias: whether the convolution has a bias.
        separable: depthwise k x k then pointwise 1 x 1 instead of a full k x k convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 3, bias: bool = False,
                 separable: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        if separable and k > 1:
            self.conv = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, k, padding=k // 2, groups=in_channels,
                          bias=False),
                nn.Conv2d(in_channels, out_channels, 1, bias=bias))
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=bias)


def round_half_even(num: int | torch.SymInt, den: int | torch.SymInt) -> int | torch.SymInt:
    """`round(num / den)` with ties to even, as Python's `round`, for positive integers.

    Integer arithmetic only (no comparison, no float), so it stays symbolic under `torch.export`.
    """
    up = (2 * num + den) // (2 * den)  # ties rounded up
    down = (2 * num + den - 1) // (2 * den)  # ties rounded down; equal to `up` off a tie
    return down + (up - down) * (down % 2)


class Renormalise(nn.Module):
    """Map an image normalised with ImageNet's statistics to another normalisation.

    Every image of this project (training data, export, the node) is normalised as
    `(pixel / 255 - mean) / std` with ImageNet's mean and std. Weights trained on
    `(pixel - pixel_mean) / pixel_std` (SwiftNet's authors: their own Cityscapes statistics,
    0-255 units) see that input again through this per-channel affine map, run first in the model,
    so the model file keeps the contract's one normalisation.

    Args:
        pixel_mean: per-channel mean (RGB, 0-255 units) the weights were trained with.
        pixel_std: per-channel std (0-255 units).
    """

    def __init__(self, pixel_mean: Sequence[float], pixel_std: Sequence[float]):
        super().__init__()
        from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        p_mean = torch.tensor([float(v) for v in pixel_mean])
        p_std = torch.tensor([float(v) for v in pixel_std])
        if p_mean.shape != (3,) or p_std.shape != (3,) or not bool((p_std > 0).all()):
            raise ValueError(f'pixel_mean and pixel_std need 3 values each, std > 0; got '
                             f'{list(pixel_mean)} and {list(pixel_std)}')
        # pixel = 255 (std x + mean), so (pixel - p_mean) / p_std = scale x + shift (in float64)
        scale = 255.0 * std.double() / p_std.double()
        shift = (255.0 * mean.double() - p_mean.double()) / p_std.double()
        self.register_buffer('scale', scale.float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer('shift', shift.float().view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The image in the target normalisation."""
        return x * self.scale + self.shift


def _pooling_matrix(size: int | torch.SymInt, bins: int | torch.SymInt,
                    like: torch.Tensor) -> torch.Tensor:
    """Matrix `[bins, size]` whose product with a vector averages it over `bins` adaptive windows.

    Window i covers [floor(i * size / bins), ceil((i + 1) * size / bins)), as
    `torch.nn.functional.adaptive_avg_pool1d`. Built from tensor ops on the (possibly symbolic)
    sizes, so the graph exports to ONNX with dynamic input sizes, which adaptive pooling with a
    non-unit output does not.
    """
    idx = torch.arange(bins, device=like.device)
    start = (idx * size) // bins
    end = ((idx + 1) * size + bins - 1) // bins
    pos = torch.arange(size, device=like.device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def adaptive_avg_pool(x: torch.Tensor, rows: int | torch.SymInt,
                      cols: int | torch.SymInt) -> torch.Tensor:
    """`F.adaptive_avg_pool2d(x, (rows, cols))` written as two matrix products (exportable)."""
    h, w = x.shape[-2:]
    pool_h = _pooling_matrix(h, rows, x)
    pool_w = _pooling_matrix(w, cols, x)
    return torch.matmul(torch.matmul(pool_h, x), pool_w.transpose(0, 1))


class SpatialPyramidPooling(nn.Module):
    """SwiftNet's SPP: 1x1 bottleneck, levels pooled on aspect-ratio grids, 1x1 fusion.

    A level with grid g pools to g rows and max(1, round(g * W / H)) columns (W, H: the input's
    size; ties to even, as Python's `round` in the authors' code), goes through BN-ReLU-1x1 to
    `level_channels`, and is upsampled bilinearly back; the bottleneck output and the levels are
    concatenated and fused by BN-ReLU-1x1.

    Args:
        in_channels: channels of the input (the last backbone stage).
        bottleneck_channels: width of the first 1x1 unit (SwiftNet: `num_features`).
        out_channels: output channels.
        grids: pooling grid heights, one level each (SwiftNet: 8, 4, 2).
        level_channels: channels of each level (SwiftNet: bottleneck // number of levels).
    """

    def __init__(self, in_channels: int, bottleneck_channels: int, out_channels: int,
                 grids: Sequence[int] = (8, 4, 2), level_channels: int | None = None):
        super().__init__()
        self.grids = tuple(int(g) for g in grids)
        level_channels = level_channels or bottleneck_channels // len(self.grids)
        self.bottleneck = BNReluConv(in_channels, bottleneck_channels, k=1)
        self.levels = nn.ModuleList(
            BNReluConv(bottleneck_channels, level_channels, k=1) for _ in self.grids)
        self.fuse = BNReluConv(bottleneck_channels + level_channels * len(self.grids),
                               out_channels, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context features at the input's resolution, `out_channels` wide."""
        h, w = x.shape[-2:]
        x = self.bottleneck(x)
        outs = [x]
        for grid, level in zip(self.grids, self.levels, strict=True):
            cols = torch.sym_max(round_half_even(grid * w, h), 1)
            pooled = level(adaptive_avg_pool(x, grid, cols))
            outs.append(F.interpolate(pooled, size=(h, w), mode='bilinear', align_corners=False))
        return self.fuse(torch.cat(outs, dim=1))


class UpsampleSkip(nn.Module):
    """Single-scale upsampling module: skip -> BN-ReLU-1x1, add upsampled x, BN-ReLU-k x k blend.

    Args:
        channels: width of the decoder stream (in and out).
        skip_channels: channels of the backbone skip feature.
        k: kernel size of the blending convolution.
        separable: depthwise-separable blending convolution (the `lite` variant).
    """

    def __init__(self, channels: int, skip_channels: int, k: int = 3, separable: bool = False):
        super().__init__()
        self.bottleneck = BNReluConv(skip_channels, channels, k=1)
        self.blend = BNReluConv(channels, channels, k=k, separable=separable)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decoder stream at the skip's resolution."""
        skip = self.bottleneck(skip)
        x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
        return self.blend(x + skip)


class UpsampleBlend(nn.Module):
    """Pyramid upsampling module: upsampled x plus the projected skip sum, BN-ReLU-k x k."""

    def __init__(self, channels: int, k: int = 3):
        super().__init__()
        self.blend = BNReluConv(channels, channels, k=k)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decoder stream at the skip's resolution."""
        x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
        return self.blend(x + skip)
