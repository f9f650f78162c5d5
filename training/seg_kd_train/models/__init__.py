"""The model registry: `build_model(name, num_classes, pretrained, **kwargs)` and `list_models()`.

The registry is one plain dict, filled here by explicit `_register` calls: every name is visible in
this file, and an unknown or duplicate name is an error that lists the known ones.
"""

from collections.abc import Callable
import inspect

from torch import nn

from seg_kd_train.models import pidnet, swiftnet
from seg_kd_train.models.base import SegmentationModel, TapInfo, count_parameters

__all__ = ['build_model', 'count_parameters', 'list_models', 'SegmentationModel', 'TapInfo']

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def _register(name: str, builder: Callable[..., nn.Module]) -> None:
    if name in _REGISTRY:
        raise ValueError(f'model name {name!r} registered twice '
                         f'({_REGISTRY[name].__qualname__} and {builder.__qualname__})')
    _REGISTRY[name] = builder


_register('swiftnet_ss_rn18', swiftnet.swiftnet_ss_rn18)
_register('swiftnet_ss_lite_rn18', swiftnet.swiftnet_ss_lite_rn18)
_register('swiftnet_pyr_rn18', swiftnet.swiftnet_pyr_rn18)
_register('swiftnet_ss_mnv4', swiftnet.swiftnet_ss_mnv4)
_register('swiftnet_pyr_mnv4', swiftnet.swiftnet_pyr_mnv4)
_register('swiftnet_ss_convnext_l', swiftnet.swiftnet_ss_convnext_l)
_register('pidnet_s', pidnet.pidnet_s)
_register('pidnet_m', pidnet.pidnet_m)
_register('pidnet_l', pidnet.pidnet_l)


def list_models() -> list[str]:
    """Names accepted by `build_model`, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int = 19, pretrained: bool | str = False,
                **kwargs) -> SegmentationModel:
    """Build a registered segmentation model.

    Args:
        name: registry name (see `list_models()`).
        num_classes: number of output classes.
        pretrained: False, True (ImageNet backbone weights through timm; needs the internet or the
            Hugging Face cache) or the path of a local `.safetensors` weights file.
        **kwargs: further keyword arguments of the model's builder (e.g. `backbone`, `num_features`
            for SwiftNet).

    Raises:
        KeyError: unknown name (the message lists the known ones).
        TypeError: a keyword argument the model does not take (named in the message).
    """
    if name not in _REGISTRY:
        raise KeyError(f'unknown model {name!r}; known models: {", ".join(list_models())}')
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
    builder = _REGISTRY[name]
    try:
        inspect.signature(builder).bind(num_classes=num_classes, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        raise TypeError(f'model {name!r}: bad keyword arguments {sorted(kwargs)}: {exc}') from None
    return builder(num_classes=num_classes, pretrained=pretrained, **kwargs)
