"""PIDNet's building blocks: residual blocks, context pooling (PAPPM, DAPPM), Pag, Bag, heads.

Written from Xu et al., "PIDNet: A Real-time Semantic Segmentation Network Inspired by PID
Controllers" (CVPR 2023). Layer shapes and the names of the submodules follow the authors' release,
so that its checkpoints (converted to safetensors) load by name.
"""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812


def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode='bilinear', align_corners=False)


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Sequential:
    """Convolution without bias followed by BatchNorm."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout))


def bn_relu_conv(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    """BatchNorm, ReLU, then a convolution without bias."""
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(),
                         nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN units with a residual; `last_relu` applies ReLU to the sum."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, last_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (conv_bn(cin, planes, 1, stride)
                           if stride != 1 or cin != planes else None)
        self.last_relu = last_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = y + (x if self.downsample is None else self.downsample(x))
        return F.relu(y) if self.last_relu else y


class Bottleneck(nn.Module):
    """1x1 - 3x3 (strided) - 1x1 conv-BN units, expansion 2, residual; no ReLU after the sum."""

    expansion = 2

    def __init__(self, cin: int, planes: int, stride: int = 1, last_relu: bool = False):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.last_relu = last_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y = y + (x if self.downsample is None else self.downsample(x))
        return F.relu(y) if self.last_relu else y


def make_stage(block: type, cin: int, planes: int, count: int, stride: int = 1) -> nn.Sequential:
    """`count` blocks, the first strided; no ReLU after the last (nor after a first Bottleneck)."""
    blocks = [block(cin, planes, stride, last_relu=block is BasicBlock)]
    for i in range(1, count):
        blocks.append(block(planes * block.expansion, planes, 1, last_relu=i < count - 1))
    return nn.Sequential(*blocks)


class SegHead(nn.Module):
    """BN-ReLU-3x3 to `mid` channels, BN-ReLU-1x1 (with bias) to `cout` channels."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel outputs at the input's resolution."""
        x = self.conv1(F.relu(self.bn1(x)))
        return self.conv2(F.relu(self.bn2(x)))


class _PyramidPoolingBase(nn.Module):
    """Average pools (5/2, 9/4, 17/8, global) of the input, each through BN-ReLU-1x1."""

    def __init__(self, cin: int, branch: int, cout: int):
        super().__init__()
        pools = [nn.AvgPool2d(5, 2, 2), nn.AvgPool2d(9, 4, 4), nn.AvgPool2d(17, 8, 8),
                 nn.AdaptiveAvgPool2d(1)]
        self.scale0 = bn_relu_conv(cin, branch)
        for i, pool in enumerate(pools, start=1):
            setattr(self, f'scale{i}', nn.Sequential(pool, *bn_relu_conv(cin, branch)))
        self.shortcut = bn_relu_conv(cin, cout)

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [_up(getattr(self, f'scale{i}')(x), x) for i in range(1, 5)]


class PAPPM(_PyramidPoolingBase):
    """Parallel aggregation PPM (PIDNet-S/M): the pooled branches are refined in parallel."""

    def __init__(self, cin: int, branch: int, cout: int):
        super().__init__(cin, branch, cout)
        self.scale_process = bn_relu_conv(branch * 4, branch * 4, k=3, groups=4)
        self.compression = bn_relu_conv(branch * 5, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context features, `cout` wide, at the input's resolution."""
        base = self.scale0(x)
        refined = self.scale_process(torch.cat([p + base for p in self._pooled(x)], dim=1))
        return self.compression(torch.cat([base, refined], dim=1)) + self.shortcut(x)


class DAPPM(_PyramidPoolingBase):
    """Deep aggregation PPM (PIDNet-L, from DDRNet): the pooled branches are refined in cascade."""

    def __init__(self, cin: int, branch: int, cout: int):
        super().__init__(cin, branch, cout)
        for i in range(1, 5):
            setattr(self, f'process{i}', bn_relu_conv(branch, branch, k=3))
        self.compression = bn_relu_conv(branch * 5, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Context features, `cout` wide, at the input's resolution."""
        outs = [self.scale0(x)]
        for i, pooled in enumerate(self._pooled(x), start=1):
            outs.append(getattr(self, f'process{i}')(pooled + outs[-1]))
        return self.compression(torch.cat(outs, dim=1)) + self.shortcut(x)


class PagFM(nn.Module):
    """Pixel-attention-guided fusion: the P branch takes I-branch detail where the two agree."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.f_x = conv_bn(channels, mid)
        self.f_y = conv_bn(channels, mid)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fuse `y` (I branch, coarser) into `x` (P branch)."""
        sim = torch.sigmoid((self.f_x(x) * _up(self.f_y(y), x)).sum(dim=1, keepdim=True))
        return (1 - sim) * x + sim * _up(y, x)


class LightBag(nn.Module):
    """Light boundary-attention-guided fusion (PIDNet-S/M): two 1x1 conv-BN paths, summed."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_p = conv_bn(cin, cout)
        self.conv_i = conv_bn(cin, cout)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Boundary attention sigmoid(d) weighs detail (p) against context (i)."""
        att = torch.sigmoid(d)
        return self.conv_p((1 - att) * i + p) + self.conv_i(i + att * p)


class Bag(nn.Module):
    """Boundary-attention-guided fusion (PIDNet-L): BN-ReLU-3x3 of the attention-weighted mix."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = bn_relu_conv(cin, cout, k=3)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Boundary attention sigmoid(d) weighs detail (p) against context (i)."""
        att = torch.sigmoid(d)
        return self.conv(att * p + (1 - att) * i)
