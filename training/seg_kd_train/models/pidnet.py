"""PIDNet-S/M/L (Xu et al., CVPR 2023): proportional, integral and derivative branches.

The I (context) branch is a ResNet-like trunk down to stride 64 ending in PAPPM (S, M) or DAPPM
(L); the P (detail) branch stays at stride 8 and takes I-branch context through two Pag fusions;
the D (boundary) branch, at stride 8 too, adds I-branch differences and feeds the boundary head.
Bag (L) or light Bag (S, M) fuses the three under boundary attention; the classifier works at
stride 8 and the logits are upsampled. The auxiliary P-branch classifier and the boundary head
live in `aux_heads` and run only in `forward_train`; they read the P and D branches after the
ReLU, as in the authors' code (its in-place ReLU rectifies the tensors it kept for those heads).
Module names follow the authors' release, so their checkpoints map key for key
(`seg-kd import-checkpoint`; `seghead_p` / `seghead_d` are `aux_heads.p_logits` / `.boundary`).
"""

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.errors import SegKdError
from seg_kd_train.models.base import SegmentationModel, TapInfo
from seg_kd_train.models.pidnet_blocks import (
    DAPPM,
    PAPPM,
    Bag,
    BasicBlock,
    Bottleneck,
    LightBag,
    PagFM,
    SegHead,
    make_stage,
)


def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode='bilinear', align_corners=False)


class PIDNet(SegmentationModel):
    """PIDNet.

    Args:
        num_classes: number of output classes.
        m: blocks per stage in the shallow stages and the P branch.
        n: blocks per stage in the deep I-branch stages.
        planes: base width.
        ppm_planes: branch width of the pyramid pooling module.
        head_planes: width of the classifier heads.
        align_corners: of the final upsampling of the logits (and of the auxiliary heads'); the
            authors train and evaluate with True, so their imported weights are run with it.
    """

    def __init__(self, num_classes: int = 19, m: int = 2, n: int = 3, planes: int = 64,
                 ppm_planes: int = 96, head_planes: int = 128, align_corners: bool = False):
        super().__init__()
        p = planes
        self.num_classes = num_classes
        self.align_corners = bool(align_corners)
        self.export_min_size = 64 * 8 + 1  # the 17/8 average pool of the stride-64 map
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, p, 3, stride=2, padding=1), nn.BatchNorm2d(p), nn.ReLU(),
            nn.Conv2d(p, p, 3, stride=2, padding=1), nn.BatchNorm2d(p), nn.ReLU())
        # I branch
        self.layer1 = make_stage(BasicBlock, p, p, m)
        self.layer2 = make_stage(BasicBlock, p, 2 * p, m, stride=2)
        self.layer3 = make_stage(BasicBlock, 2 * p, 4 * p, n, stride=2)
        self.layer4 = make_stage(BasicBlock, 4 * p, 8 * p, n, stride=2)
        self.layer5 = make_stage(Bottleneck, 8 * p, 8 * p, 2, stride=2)
        # P branch
        self.compression3 = nn.Sequential(nn.Conv2d(4 * p, 2 * p, 1, bias=False),
                                          nn.BatchNorm2d(2 * p))
        self.compression4 = nn.Sequential(nn.Conv2d(8 * p, 2 * p, 1, bias=False),
                                          nn.BatchNorm2d(2 * p))
        self.pag3 = PagFM(2 * p, p)
        self.pag4 = PagFM(2 * p, p)
        self.layer3_ = make_stage(BasicBlock, 2 * p, 2 * p, m)
        self.layer4_ = make_stage(BasicBlock, 2 * p, 2 * p, m)
        self.layer5_ = make_stage(Bottleneck, 2 * p, 2 * p, 1)
        # D branch
        light = m == 2
        d3 = p if light else 2 * p
        self.layer3_d = BasicBlock(2 * p, d3, last_relu=False)
        self.layer4_d = (make_stage(Bottleneck, p, p, 1) if light
                         else BasicBlock(2 * p, 2 * p, last_relu=False))
        self.diff3 = nn.Sequential(nn.Conv2d(4 * p, d3, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(d3))
        self.diff4 = nn.Sequential(nn.Conv2d(8 * p, 2 * p, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(2 * p))
        self.layer5_d = make_stage(Bottleneck, 2 * p, 2 * p, 1)
        # context and fusion
        self.spp = (PAPPM if light else DAPPM)(16 * p, ppm_planes, 4 * p)
        self.dfm = (LightBag if light else Bag)(4 * p, 4 * p)
        self.final_layer = SegHead(4 * p, head_planes, num_classes)
        self.aux_heads = nn.ModuleDict({
            'p_logits': SegHead(2 * p, head_planes, num_classes),
            'boundary': SegHead(2 * p, p, 1),
        })
        self.taps = {
            'stage1': TapInfo(p, 4), 'stage2': TapInfo(2 * p, 8), 'stage3': TapInfo(4 * p, 16),
            'stage4': TapInfo(8 * p, 32), 'stage5': TapInfo(16 * p, 64),
            'context': TapInfo(4 * p, 64), 'p_branch': TapInfo(4 * p, 8),
            'd_branch': TapInfo(4 * p, 8), 'features': TapInfo(4 * p, 8),
        }
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode='fan_out', nonlinearity='relu')

    def _run(self, x: torch.Tensor, with_extras: bool) -> dict:
        s1 = self.layer1(self.conv1(x))
        s2 = self.layer2(F.relu(s1))
        x = F.relu(s2)  # stride 8: the resolution of the P and D branches
        xp = self.layer3_(x)
        xd = self.layer3_d(x)
        s3 = self.layer3(x)
        x = F.relu(s3)
        xp = self.pag3(xp, self.compression3(x))
        xd = xd + _up(self.diff3(x), xd)
        xp = F.relu(xp)
        aux_p_in = xp  # after the ReLU: see the module docstring
        s4 = self.layer4(x)
        x = F.relu(s4)
        xp = self.layer4_(xp)
        xd = self.layer4_d(F.relu(xd))
        xp = self.pag4(xp, self.compression4(x))
        xd = xd + _up(self.diff4(x), xd)
        xd = F.relu(xd)
        aux_d_in = xd
        xp = self.layer5_(F.relu(xp))
        xd = self.layer5_d(xd)
        s5 = self.layer5(x)
        context = self.spp(s5)
        features = self.dfm(xp, _up(context, xp), xd)
        out = {'logits': self.final_layer(features), 'aux': {}}
        if with_extras:
            out['aux'] = {'p_logits': self.aux_heads['p_logits'](aux_p_in),
                          'boundary': self.aux_heads['boundary'](aux_d_in)}
            out['taps'] = {'stage1': s1, 'stage2': s2, 'stage3': s3, 'stage4': s4, 'stage5': s5,
                           'context': context, 'p_branch': xp, 'd_branch': xd,
                           'features': features}
        return out


IMAGENET_HINT = ("PIDNet has no ImageNet weights in timm: download the authors' ImageNet "
                 'checkpoint (PIDNet_{v}_ImageNet.pth.tar, linked from '
                 'github.com/XuJiacong/PIDNet), run `seg-kd import-checkpoint --in '
                 'PIDNet_{v}_ImageNet.pth.tar --out weights/pidnet_{l}_imagenet.safetensors` and '
                 'set model.pretrained to that file')


def _build(num_classes: int, pretrained: bool | str | Path, variant: str, **cfg) -> PIDNet:
    if pretrained is True or pretrained == 'imagenet':
        raise SegKdError(IMAGENET_HINT.format(v=variant.upper(), l=variant))
    if pretrained:  # build_model loads checkpoints of this project itself
        raise SegKdError(f"{pretrained}: not a checkpoint of this project; convert the authors' "
                         'PIDNet checkpoints with `seg-kd import-checkpoint`')
    return PIDNet(num_classes, **cfg)


def pidnet_s(num_classes: int = 19, pretrained: bool | str = False,
             align_corners: bool = False) -> PIDNet:
    """PIDNet-S: m=2, n=3, planes 32, PAPPM 96, head 128 (7,625,715 parameters, 19 classes)."""
    return _build(num_classes, pretrained, 's', m=2, n=3, planes=32, ppm_planes=96,
                  head_planes=128, align_corners=align_corners)


def pidnet_m(num_classes: int = 19, pretrained: bool | str = False,
             align_corners: bool = False) -> PIDNet:
    """PIDNet-M: m=2, n=3, planes 64, PAPPM 96, head 128 (28,538,515 parameters, 19 classes)."""
    return _build(num_classes, pretrained, 'm', m=2, n=3, planes=64, ppm_planes=96,
                  head_planes=128, align_corners=align_corners)


def pidnet_l(num_classes: int = 19, pretrained: bool | str = False,
             align_corners: bool = False) -> PIDNet:
    """PIDNet-L: m=3, n=4, planes 64, DAPPM 112, head 256 (36,939,571 parameters, 19 classes)."""
    return _build(num_classes, pretrained, 'l', m=3, n=4, planes=64, ppm_planes=112,
                  head_planes=256, align_corners=align_corners)
