"""The model registry: `build_model(name, num_classes, pretrained, **kwargs)` and `list_models()`.

The registry is one plain dict, filled here by explicit `_register` calls: every name is visible in
this file, and an unknown or duplicate name is an error that lists the known ones.
"""

from collections.abc import Callable
import inspect
from pathlib import Path

from torch import nn

from seg_kd_train.errors import SegKdError
from seg_kd_train.models import pidnet, swiftnet, weights
from seg_kd_train.models.base import SegmentationModel, TapInfo, count_parameters

__all__ = ['TEACHER', 'build_model', 'check_pretrained', 'count_parameters', 'list_models',
           'SegmentationModel', 'TapInfo']

TEACHER = 'swiftnet_ss_convnext_l'
"""The thesis's teacher, SwiftNet single-scale over ConvNeXt-L (~206 M parameters)."""

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
_register(TEACHER, swiftnet.swiftnet_ss_convnext_l)
_register('pidnet_s', pidnet.pidnet_s)
_register('pidnet_m', pidnet.pidnet_m)
_register('pidnet_l', pidnet.pidnet_l)


def list_models() -> list[str]:
    """Names accepted by `build_model`, sorted."""
    return sorted(_REGISTRY)


def check_pretrained(name: str, pretrained: bool | str | Path | None) -> dict | None:
    """Check, without building anything, that `pretrained` can start model `name`.

    Cheap (reads at most a file's header), so a run can stop at once, before reading any data.

    Returns:
        The metadata of a weights file of this project, else None.

    Raises:
        SegKdError: a missing file (saying how to make it), weights of another model, or
            ImageNet weights asked for a model that has none (PIDNet).
    """
    if name not in _REGISTRY:
        raise KeyError(f'unknown model {name!r}; known models: {", ".join(list_models())}')
    source = weights.parse_pretrained(pretrained)
    if source == 'imagenet' and name.startswith('pidnet_'):
        raise SegKdError(pidnet.IMAGENET_HINT.format(v=name[-1].upper(), l=name[-1]))
    if not isinstance(source, Path):
        return None
    if not source.is_file():
        raise SegKdError(f'pretrained weights {source} not found: '
                         f'{weights.missing_weights_hint(name)}')
    if not weights.is_weights_file(source):
        return None  # SwiftNet: timm backbone weights; the builder checks them
    checkpoint = weights.read_weights_metadata(source)
    if checkpoint['model_name'] != name:
        raise SegKdError(f'{source} holds {checkpoint["model_name"]} weights, not {name}: set '
                         f'model.name to {checkpoint["model_name"]} or use other weights')
    return checkpoint


def build_model(name: str, num_classes: int = 19, pretrained: bool | str | Path = False,
                **kwargs) -> SegmentationModel:
    """Build a registered segmentation model.

    Args:
        name: registry name (see `list_models()`).
        num_classes: number of output classes.
        pretrained: `none` (or False), `imagenet` (or True: ImageNet backbone weights through
            timm; needs the internet or the Hugging Face cache; PIDNet has none) or the path of a
            weights file of this project (`seg-kd train`, `seg-kd import-checkpoint`): the model
            takes its build arguments (e.g. an imported model's normalisation) and its weights,
            the classifiers excepted when `num_classes` differs. For SwiftNet the path may also be
            timm weights of the backbone (timm's key names), for ImageNet weights offline.
        **kwargs: further keyword arguments of the model's builder (e.g. `backbone`, `num_features`
            for SwiftNet); they take precedence over a weights file's.

    The model records the keyword arguments it was built with as `model.build_kwargs`.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        TypeError: a keyword argument the model does not take (named in the message).
        SegKdError: weights that are missing, of another model, or do not fit (one line).
    """
    if name not in _REGISTRY:
        raise KeyError(f'unknown model {name!r}; known models: {", ".join(list_models())}')
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
    builder = _REGISTRY[name]
    source = weights.parse_pretrained(pretrained)
    checkpoint = check_pretrained(name, pretrained)
    if checkpoint is not None:
        kwargs = {**checkpoint['model_kwargs'], **kwargs}
    try:
        inspect.signature(builder).bind(num_classes=num_classes, pretrained=False, **kwargs)
    except TypeError as exc:
        raise TypeError(f'model {name!r}: bad keyword arguments {sorted(kwargs)}: {exc}') from None
    arg = False if checkpoint is not None or source == 'none' else (
        True if source == 'imagenet' else str(source))
    model = builder(num_classes=num_classes, pretrained=arg, **kwargs)
    if checkpoint is not None:
        weights.load_into(model, source, checkpoint)
    model.build_kwargs = dict(kwargs)
    return model
