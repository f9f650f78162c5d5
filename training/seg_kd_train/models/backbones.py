"""timm backbones as feature pyramids at strides 4, 8, 16 and 32, with ImageNet or local weights.

Channels and strides come from timm's `feature_info`. With `preact`, ResNet stage outputs are
tapped before their final ReLU, as SwiftNet's pyramid model does: the last block's output
activation is replaced by an identity and the ReLU is applied between stages by
`TimmBackbone.forward` instead, so the weights and their names stay those of timm (ImageNet
checkpoints load unchanged).
"""

import contextlib
import copy
import os
from pathlib import Path
import socket
from urllib.parse import urlparse

import timm
from timm.models.resnet import BasicBlock, Bottleneck
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.errors import SegKdError

STRIDES = (4, 8, 16, 32)


def create_timm_features(name: str, pretrained: bool | str | Path) -> nn.Module:
    """`timm.create_model(name, features_only=True)` with ImageNet weights, a local file or none.

    Args:
        name: timm model name.
        pretrained: False (random init), True (timm's ImageNet weights, needs the internet or the
            Hugging Face cache) or the path of a local `.safetensors` file with weights of the timm
            model `name` (timm's own key names, the classifier may be present or not).

    Raises:
        SegKdError: unknown timm model, a weights path that is not an existing `.safetensors`
            file, or ImageNet weights that could not be downloaded (offline) or loaded.
    """
    if not timm.is_model(name.split('.')[0]):
        raise SegKdError(f'unknown timm backbone {name!r} (see timm.list_models())')
    kwargs = {}
    if isinstance(pretrained, (str, Path)):
        path = Path(pretrained)
        if path.suffix != '.safetensors':
            raise SegKdError(f'backbone weights must be a .safetensors file, got {path}')
        if not path.is_file():
            raise SegKdError(f'backbone weights file not found: {path}')
        kwargs['pretrained_cfg_overlay'] = {'file': str(path), 'source': ''}
        pretrained = True
    offline = pretrained and 'pretrained_cfg_overlay' not in kwargs and not _hub_reachable()
    try:
        with _hub_offline(offline):
            return timm.create_model(name, features_only=True, pretrained=bool(pretrained),
                                     **kwargs)
    except Exception as exc:  # noqa: BLE001 - network, hub and state-dict errors all end up here
        if not pretrained:
            raise
        where = kwargs.get('pretrained_cfg_overlay', {}).get('file', 'the Hugging Face hub')
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SegKdError(
            f'could not load ImageNet weights for timm backbone {name!r} from {where} ({reason}); '
            'offline? set model.pretrained to none, or to a local .safetensors file of timm '
            "weights for this backbone (timm's key names)") from exc


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (True behind a configured proxy)."""
    if any(os.environ.get(k) for k in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy')):
        return True
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or 'huggingface.co'
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """Put huggingface_hub in offline mode (cache only) for the block, as HF_HUB_OFFLINE=1 would.

    Without it the hub client retries an unreachable server for about a minute before failing.
    """
    if not offline:
        yield
        return
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


class _LevelNorm(nn.Module):
    """One copy of a normalisation layer per pyramid level; `level` selects the copy to run."""

    def __init__(self, norm: nn.Module, levels: int):
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(norm) for _ in range(levels))
        self.level = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the statistics and affine parameters of the current level."""
        return self.copies[self.level](x)


def _split_norms(module: nn.Module, levels: int) -> list[_LevelNorm]:
    """Replace every BatchNorm2d (and subclasses such as timm's BatchNormAct2d) in place.

    The norms of ResNet shortcut projections (`downsample`) stay one module for all levels: the
    authors' pyramid SwiftNet shares them, and their checkpoints hold one copy.
    """
    made = []
    for name, child in module.named_children():
        if name == 'downsample':
            continue
        if isinstance(child, nn.BatchNorm2d):
            wrapped = _LevelNorm(child, levels)
            setattr(module, name, wrapped)
            made.append(wrapped)
        else:
            made.extend(_split_norms(child, levels))
    return made


class TimmBackbone(nn.Module):
    """Feature pyramid (strides 4, 8, 16, 32) of a timm model.

    Args:
        name: timm model name (e.g. `resnet18`, `mobilenetv4_conv_medium`, `convnext_large`).
        pretrained: see `create_timm_features`.
        preact: tap ResNet stages before their last ReLU (ignored for other architectures).
        norm_levels: more than 1 gives every BatchNorm but the shortcut projections' one copy per
            pyramid level (SwiftNet's pyramid model); choose the copy with `set_level`.

    Attributes:
        channels: channels of the four outputs.
        strides: their strides, (4, 8, 16, 32).
        preact: whether the outputs are pre-activation ResNet stage outputs.
    """

    def __init__(self, name: str, pretrained: bool | str | Path = False, preact: bool = True,
                 norm_levels: int = 1):
        super().__init__()
        self.body = create_timm_features(name, pretrained)
        info = self.body.feature_info
        reductions = list(info.reduction())
        if reductions[-4:] != list(STRIDES):
            raise ValueError(f'timm backbone {name!r} has feature strides {reductions}; '
                             f'SwiftNet needs {list(STRIDES)} as its last four')
        self.picks = list(range(len(reductions) - 4, len(reductions)))
        self.channels = [int(info.channels()[i]) for i in self.picks]
        self.strides = list(STRIDES)
        self.stage_names = [info.module_name()[i].replace('.', '_') for i in self.picks]
        self.preact = preact and self._make_preact()
        self._norms = _split_norms(self.body, norm_levels) if norm_levels > 1 else []

    def _make_preact(self) -> bool:
        """Swap the last activation of each ResNet stage for an identity; False if not a ResNet."""
        if not isinstance(self.body, nn.ModuleDict):
            return False
        stages = [self.body[n] if n in self.body else None for n in self.stage_names]
        lasts = [s[-1] if isinstance(s, nn.Sequential) else None for s in stages]
        if not all(isinstance(b, (BasicBlock, Bottleneck)) for b in lasts):
            return False
        for block in lasts:
            if isinstance(block, BasicBlock):
                block.act2 = nn.Identity()
            else:
                block.act3 = nn.Identity()
        return True

    def set_level(self, level: int) -> None:
        """Select the per-level normalisation copies (pyramid models only)."""
        for norm in self._norms:
            norm.level = level

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four feature maps, strides 4 to 32."""
        if not self.preact:
            feats = self.body(x)
            return [feats[i] for i in self.picks]
        outs = []
        for name, module in self.body.items():
            x = module(x)
            if name in self.stage_names:
                outs.append(x)
                x = F.relu(x)
        return outs
