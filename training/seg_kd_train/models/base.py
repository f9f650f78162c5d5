"""What every model of the registry shares: declared taps and the two forward paths."""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812


@dataclass(frozen=True)
class TapInfo:
    """A named intermediate tensor that distillation may read.

    Attributes:
        channels: number of channels of the tapped tensor.
        stride: its output stride (input size / tap size, rounded up for odd sizes).
    """

    channels: int
    stride: int


class SegmentationModel(nn.Module):
    """Base class: `forward` for inference and export, `forward_train` for training and KD.

    Subclasses set `self.taps` (name -> TapInfo, always with `features` and `context`),
    `self.num_classes`, `self.export_min_size`, keep auxiliary heads in `self.aux_heads` (an
    `nn.ModuleDict`, empty when there are none; they are left out of inference) and implement
    `_run(x, with_extras)`.

    `export_min_size` is the smallest input height/width to declare for a dynamic dimension in
    `torch.export` / `torch.onnx.export(dynamic_shapes=...)`: one more than the largest stride in
    the network, so that no intermediate map is 1 pixel wide (torch.export specialises size-1
    dimensions). The exported ONNX graph itself runs at smaller sizes too.
    """

    taps: dict[str, TapInfo]
    num_classes: int
    export_min_size: int
    align_corners: bool = False  # of the final bilinear upsampling of the logits


    def _run(self, x: torch.Tensor, with_extras: bool) -> dict:
        """Return `logits` at the network's own output stride, plus `taps` and `aux` if asked."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits `[N, C, H, W]` at the input resolution; no taps, no auxiliary heads."""
        logits = self._run(x, with_extras=False)['logits']
        return resize_to(logits, x, self.align_corners)

    def forward_train(self, x: torch.Tensor) -> dict:
        """Logits at input resolution, auxiliary heads (input resolution) and every declared tap.

        Returns:
            dict with `logits` `[N, C, H, W]`, `aux` (name -> `[N, *, H, W]`, empty for models
            without auxiliary heads) and `taps` (name -> Tensor, as declared in `self.taps`).
        """
        out = self._run(x, with_extras=True)
        return {
            'logits': resize_to(out['logits'], x, self.align_corners),
            'aux': {k: resize_to(v, x, self.align_corners) for k, v in out['aux'].items()},
            'taps': out['taps'],
        }


def resize_to(t: torch.Tensor, ref: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Bilinearly resize `t` to the spatial size of `ref`."""
    return F.interpolate(t, size=ref.shape[-2:], mode='bilinear', align_corners=align_corners)


def count_parameters(model: nn.Module, inference: bool = True) -> int:
    """Number of parameters; with `inference`, those of training-only `aux_heads` are left out."""
    total = sum(p.numel() for p in model.parameters())
    aux = getattr(model, 'aux_heads', None)
    if inference and isinstance(aux, nn.Module):
        total -= sum(p.numel() for p in aux.parameters())
    return total
