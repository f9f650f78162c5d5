"""SwiftNet (Oršić et al., CVPR 2019) over timm backbones: single-scale, lite and pyramid.

Single-scale: backbone stages at strides 4..32; the stride-32 stage feeds spatial pyramid pooling
(the `context` tap); three upsampling modules fuse the stride-16, -8 and -4 skips; a BN-ReLU-1x1
classifier at stride 4 (the `features` tap is its input). The skips are the stage outputs after
their ReLU: the paper describes them as taken before it, but the authors' code, with which their
published weights were trained, returns the sum that its in-place ReLU has already rectified.
Lite: the same with depthwise-separable 3x3 blending convolutions.

Pyramid: the image at scales 1, 1/2 and 1/4 goes through one backbone with one set of BatchNorms
per scale; every stage output is projected by a 1x1 convolution and the projections that land on
the same resolution are summed; five upsampling modules go from stride 128 back to 4 (no SPP: the
`context` tap is the decoder stream at stride 32). Its skips are taken before the ReLU (the
authors' pyramid code keeps the sum apart from the activation), and the shortcut projections'
BatchNorms are shared by all scales, as in the authors' code.

Both take `pixel_mean` / `pixel_std` (0-255 units): the normalisation imported weights were trained
with, reached from the project's ImageNet-normalised input by `Renormalise` (see there).
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.models.backbones import TimmBackbone
from seg_kd_train.models.base import SegmentationModel, TapInfo, resize_to
from seg_kd_train.models.swiftnet_layers import (
    BNReluConv,
    Renormalise,
    SpatialPyramidPooling,
    UpsampleBlend,
    UpsampleSkip,
)


def _renorm(pixel_mean: Sequence[float] | None, pixel_std: Sequence[float] | None) -> nn.Module:
    if (pixel_mean is None) != (pixel_std is None):
        raise ValueError('pixel_mean and pixel_std go together: give both or neither')
    return nn.Identity() if pixel_mean is None else Renormalise(pixel_mean, pixel_std)


def _stage_taps(backbone: TimmBackbone) -> dict[str, TapInfo]:
    return {f'stage{i + 1}': TapInfo(c, s)
            for i, (c, s) in enumerate(zip(backbone.channels, backbone.strides, strict=True))}


class SwiftNet(SegmentationModel):
    """Single-scale SwiftNet.

    Args:
        num_classes: number of output classes.
        backbone: timm model name with features at strides 4, 8, 16, 32.
        pretrained: False, True (timm ImageNet weights) or a local `.safetensors` backbone file.
        num_features: decoder width (SwiftNet: 128).
        spp_grids: SPP grid heights (SwiftNet: 8, 4, 2).
        separable: depthwise-separable blending convolutions in the upsampling modules (lite).
        pixel_mean: mean (RGB, 0-255) the weights expect instead of ImageNet's normalisation.
        pixel_std: std (0-255) to go with `pixel_mean`.
    """

    def __init__(self, num_classes: int = 19, backbone: str = 'resnet18',
                 pretrained: bool | str | Path = False, num_features: int = 128,
                 spp_grids: Sequence[int] = (8, 4, 2), separable: bool = False,
                 pixel_mean: Sequence[float] | None = None,
                 pixel_std: Sequence[float] | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.export_min_size = 32 + 1
        self.renorm = _renorm(pixel_mean, pixel_std)
        # stage outputs after the ReLU, as the authors' code computes them (module docstring)
        self.backbone = TimmBackbone(backbone, pretrained, preact=False)
        ch = self.backbone.channels
        self.spp = SpatialPyramidPooling(ch[3], num_features, num_features, grids=spp_grids)
        self.upsample = nn.ModuleList(
            UpsampleSkip(num_features, c, separable=separable) for c in reversed(ch[:3]))
        self.logits = BNReluConv(num_features, num_classes, k=1, bias=True)
        self.aux_heads = nn.ModuleDict()
        self.taps = {**_stage_taps(self.backbone), 'context': TapInfo(num_features, 32),
                     'features': TapInfo(num_features, 4)}

    def _run(self, x: torch.Tensor, with_extras: bool) -> dict:
        stages = self.backbone(self.renorm(x))
        context = self.spp(stages[3])
        y = context
        for up, skip in zip(self.upsample, reversed(stages[:3]), strict=True):
            y = up(y, skip)
        out = {'logits': self.logits(y), 'aux': {}}
        if with_extras:
            out['taps'] = {**{f'stage{i + 1}': s for i, s in enumerate(stages)},
                           'context': context, 'features': y}
        return out


class SwiftNetPyramid(SegmentationModel):
    """Pyramid (multi-scale input) SwiftNet.

    Args:
        num_classes: number of output classes.
        backbone: timm model name with features at strides 4, 8, 16, 32.
        pretrained: False, True (timm ImageNet weights) or a local `.safetensors` backbone file.
        num_features: decoder width (SwiftNet: 128).
        pyramid_levels: number of image scales (1, 1/2, 1/4, ...; SwiftNet: 3).
        pixel_mean: mean (RGB, 0-255) the weights expect instead of ImageNet's normalisation.
        pixel_std: std (0-255) to go with `pixel_mean`.
    """

    def __init__(self, num_classes: int = 19, backbone: str = 'resnet18',
                 pretrained: bool | str | Path = False, num_features: int = 128,
                 pyramid_levels: int = 3, pixel_mean: Sequence[float] | None = None,
                 pixel_std: Sequence[float] | None = None):
        super().__init__()
        if pyramid_levels < 1:
            raise ValueError(f'pyramid_levels must be >= 1, got {pyramid_levels}')
        self.num_classes = num_classes
        self.renorm = _renorm(pixel_mean, pixel_std)
        self.pyramid_levels = pyramid_levels
        self.export_min_size = 32 * 2 ** (pyramid_levels - 1) + 1
        self.backbone = TimmBackbone(backbone, pretrained, norm_levels=pyramid_levels)
        self.bottlenecks = nn.ModuleList(
            nn.Conv2d(c, num_features, 1, bias=False) for c in self.backbone.channels)
        # skip resolutions: strides 4 .. 32 * 2 ** (levels - 1); one blend per step up
        self.blends = nn.ModuleList(UpsampleBlend(num_features) for _ in range(pyramid_levels + 2))
        self.logits = BNReluConv(num_features, num_classes, k=1, bias=True)
        self.aux_heads = nn.ModuleDict()
        self.taps = {**_stage_taps(self.backbone), 'context': TapInfo(num_features, 32),
                     'features': TapInfo(num_features, 4)}

    def _run(self, x: torch.Tensor, with_extras: bool) -> dict:
        x = self.renorm(x)  # before the image pyramid, as the authors normalise
        h, w = x.shape[-2:]
        sums: list[torch.Tensor | None] = [None] * (self.pyramid_levels + 3)
        stages0: list[torch.Tensor] = []
        for level in range(self.pyramid_levels):
            if level == 0:
                image = x
            else:
                f = 2 ** level  # sizes rounded up, so every level's stride-2 steps line up
                image = F.interpolate(x, size=((h + f - 1) // f, (w + f - 1) // f), mode='bicubic',
                                      align_corners=False)
            self.backbone.set_level(level)
            stages = self.backbone(image)
            if level == 0:
                stages0 = stages
            for j, (feat, proj) in enumerate(zip(stages, self.bottlenecks, strict=True)):
                p = proj(feat)
                k = level + j
                # the sizes agree (ceil rounding everywhere); the resize, an identity at run time,
                # says so to torch.export, which cannot prove ceil(ceil(h / 2) / 4) == ceil(h / 8)
                sums[k] = p if sums[k] is None else sums[k] + resize_to(p, sums[k])
        self.backbone.set_level(0)
        y = sums[-1]
        context = y
        for i, blend in enumerate(self.blends):
            target = len(sums) - 2 - i
            y = blend(y, sums[target])
            if target == 3:  # stride 32
                context = y
        out = {'logits': self.logits(y), 'aux': {}}
        if with_extras:
            out['taps'] = {**{f'stage{i + 1}': s for i, s in enumerate(stages0)},
                           'context': context, 'features': y}
        return out


MNV4 = 'mobilenetv4_conv_medium'
"""The MobileNetV4 of the thesis's students: the thesis does not name the variant; the medium
convolutional one is the fastest on edge accelerators among those near its size."""


def swiftnet_ss_rn18(num_classes: int = 19, pretrained: bool | str = False,
                     backbone: str = 'resnet18', num_features: int = 128,
                     pixel_mean: Sequence[float] | None = None,
                     pixel_std: Sequence[float] | None = None) -> SwiftNet:
    """SwiftNet single-scale, ResNet-18 (11.80 M parameters with 19 classes)."""
    return SwiftNet(num_classes, backbone, pretrained, num_features, pixel_mean=pixel_mean,
                    pixel_std=pixel_std)


def swiftnet_ss_lite_rn18(num_classes: int = 19, pretrained: bool | str = False,
                          backbone: str = 'resnet18', num_features: int = 128) -> SwiftNet:
    """SwiftNet single-scale lite: depthwise-separable upsampling blends, ResNet-18."""
    return SwiftNet(num_classes, backbone, pretrained, num_features, separable=True)


def swiftnet_pyr_rn18(num_classes: int = 19, pretrained: bool | str = False,
                      backbone: str = 'resnet18', num_features: int = 128,
                      pixel_mean: Sequence[float] | None = None,
                      pixel_std: Sequence[float] | None = None) -> SwiftNetPyramid:
    """SwiftNet pyramid (3 scales), ResNet-18 (12,056,275 parameters with 19 classes)."""
    return SwiftNetPyramid(num_classes, backbone, pretrained, num_features, pixel_mean=pixel_mean,
                           pixel_std=pixel_std)


def swiftnet_ss_mnv4(num_classes: int = 19, pretrained: bool | str = False,
                     backbone: str = MNV4, num_features: int = 128) -> SwiftNet:
    """SwiftNet single-scale, MobileNetV4 (conv medium)."""
    return SwiftNet(num_classes, backbone, pretrained, num_features)


def swiftnet_pyr_mnv4(num_classes: int = 19, pretrained: bool | str = False,
                      backbone: str = MNV4, num_features: int = 128) -> SwiftNetPyramid:
    """SwiftNet pyramid, MobileNetV4 (conv medium): the thesis's SN-FPN-MNv4 student."""
    return SwiftNetPyramid(num_classes, backbone, pretrained, num_features)


def swiftnet_ss_convnext_l(num_classes: int = 19, pretrained: bool | str = False,
                           backbone: str = 'convnext_large', num_features: int = 512) -> SwiftNet:
    """The teacher: single-scale SwiftNet on ConvNeXt-L with a 512-wide decoder (~206 M params)."""
    return SwiftNet(num_classes, backbone, pretrained, num_features)
