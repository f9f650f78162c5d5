"""Model weights as safetensors files that carry what is needed to rebuild the model.

A weights file holds a state dict and, in the safetensors metadata, the registry name, the number
of classes and the build keyword arguments (JSON). Files written by `seg-kd import-checkpoint` also
name their `source`, `classes` (JSON list), `normalisation` (JSON, informative) and `contents`:
`full` (the whole model) or `backbone` (pretrained layers only, e.g. the authors' ImageNet
checkpoint: a start for training, not a model to export). Nothing is unpickled, so a file from an
untrusted source cannot run code.
"""

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
import torch
from torch import nn

from seg_kd_ros.atomic_files import atomic_path
from seg_kd_train.errors import SegKdError

CONTENTS = ('full', 'backbone')
SHOWN = 4  # names listed in a one-line error


def save_state_dict(path: str | Path, state: dict[str, torch.Tensor], model_name: str,
                    num_classes: int, model_kwargs: dict | None = None,
                    extra: dict | None = None) -> None:
    """Write a state dict with its build arguments to `path` atomically, with the umask's mode.

    Args:
        path: destination `.safetensors` file.
        state: tensors by this project's parameter names.
        model_name: name in the model registry (`build_model`).
        num_classes: number of output classes.
        model_kwargs: further keyword arguments of `build_model`.
        extra: more metadata (strings as they are, anything else as JSON).
    """
    metadata = {
        'model_name': model_name,
        'num_classes': str(num_classes),
        'model_kwargs': json.dumps(model_kwargs or {}),
    }
    for key, value in (extra or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_tensors(path, state, metadata)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str]) -> None:
    """Write tensors and string metadata as a safetensors file, atomically (umask's mode)."""
    # safetensors refuses tensors that share storage; clone makes each one its own.
    tensors = {k: v.detach().contiguous().clone().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_model_weights(path: str | Path, model: nn.Module, model_name: str, num_classes: int,
                       model_kwargs: dict | None = None, extra: dict | None = None) -> None:
    """Write `model`'s weights and its build arguments to `path` atomically.

    The build arguments are those `build_model` recorded on the model (including any taken from
    the checkpoint it started from, such as an imported model's normalisation), updated with
    `model_kwargs`.
    """
    kwargs = {**getattr(model, 'build_kwargs', {}), **(model_kwargs or {})}
    save_state_dict(path, model.state_dict(), model_name, num_classes, kwargs, extra)


def read_weights_metadata(path: str | Path) -> dict:
    """A weights file's metadata, `num_classes`, `model_kwargs`, `classes` and `palette` parsed.

    Raises:
        SegKdError: a missing file, a file that is not safetensors, or one without `model_name`.
    """
    path = Path(path)
    if not path.is_file():
        raise SegKdError(f'weights file not found: {path}')
    try:
        with safe_open(str(path), framework='pt') as f:
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise SegKdError(f'{path}: not a safetensors weights file ({exc}); convert the '
                         "authors' checkpoints with `seg-kd import-checkpoint`") from None
    if 'model_name' not in metadata:
        raise SegKdError(f'{path} has no model_name in its metadata: not a weights file of this '
                         'project (`seg-kd train` or `seg-kd import-checkpoint` write those)')
    metadata['num_classes'] = int(metadata['num_classes'])
    metadata['model_kwargs'] = json.loads(metadata.get('model_kwargs', '{}'))
    for key in ('classes', 'palette'):  # JSON text in the file
        if key in metadata:
            metadata[key] = json.loads(metadata[key])
    metadata.setdefault('contents', 'full')
    return metadata


def load_model_weights(path: str | Path, map_location: str | torch.device = 'cpu') -> nn.Module:
    """Rebuild the model described by a weights file and load its weights (strictly).

    Raises:
        SegKdError: not a weights file of this project, or one that holds only pretrained
            backbone layers (train from it first).
    """
    from seg_kd_train.models import build_model

    metadata = read_weights_metadata(path)
    if metadata['contents'] != 'full':
        raise SegKdError(f'{path} holds only {metadata["contents"]} weights '
                         f'({metadata.get("source", "imported")}): train from it '
                         f'(model.pretrained: {path}) and use the trained checkpoint')
    model = build_model(metadata['model_name'], num_classes=metadata['num_classes'],
                        pretrained=False, **metadata['model_kwargs'])
    model.load_state_dict(load_file(str(path), device=str(map_location)))
    return model


def parse_pretrained(value: bool | str | Path | None) -> str | Path:
    """`imagenet`, `none` or a Path, from a recipe's `model.pretrained` or `build_model`'s.

    True and False (older recipes) read as `imagenet` and `none`.
    """
    if value is True or (isinstance(value, str) and value.lower() == 'imagenet'):
        return 'imagenet'
    if value is None or value is False or (isinstance(value, str) and value.lower() in
                                           ('none', '')):
        return 'none'
    return Path(value)


def is_weights_file(path: Path) -> bool:
    """Whether `path` is a safetensors file written by this project (it names its model)."""
    try:
        with safe_open(str(path), framework='pt') as f:
            return 'model_name' in (f.metadata() or {})
    except (SafetensorError, OSError):
        return False


def missing_weights_hint(model_name: str) -> str:
    """How to get pretrained weights for `model_name` (the end of a one-line error)."""
    if model_name.startswith('pidnet_'):
        v = model_name[-1].upper()
        return (f"the authors' PIDNet-{v} checkpoints (PIDNet_{v}_ImageNet.pth.tar, "
                f'PIDNet_{v}_Cityscapes_val.pt, linked from github.com/XuJiacong/PIDNet) become '
                'one with `seg-kd import-checkpoint --in <download> --out <this path>`')
    if model_name in ('swiftnet_ss_rn18', 'swiftnet_pyr_rn18'):
        which = 'rn18_single_scale' if '_ss_' in model_name else 'rn18_pyramid'
        return (f"the authors' Cityscapes weights ({which}/model_best.pt, linked from "
                'github.com/orsic/swiftnet) become one with `seg-kd import-checkpoint --in '
                '<download> --out <this path>`')
    return 'write one with `seg-kd train`, or set model.pretrained to imagenet or none'


def load_into(model: nn.Module, path: Path, metadata: dict) -> None:
    """Load a weights file into `model` built for it; every tensor of the file must fit.

    A `full` file fills the whole model; a `backbone` file the layers it holds. With a number of
    classes other than the file's, the class-sized tensors (the classifiers) are left as built.

    Raises:
        SegKdError: tensors of the file the model lacks or whose shapes differ, or model tensors
            a full file lacks (the first few named).
    """
    state = load_file(str(path))
    own = model.state_dict()
    file_classes = metadata['num_classes']
    new_classes = getattr(model, 'num_classes', file_classes) != file_classes
    unknown = [k for k in state if k not in own]
    skipped = [k for k in state if k in own and own[k].shape != state[k].shape
               and new_classes and state[k].shape[:1] == (file_classes,)]
    misfit = [k for k in state if k in own and own[k].shape != state[k].shape
              and k not in skipped]
    for what, keys in (('names the model lacks', unknown), ('shapes that differ', misfit)):
        if keys:
            raise SegKdError(f'{path}: {plural(len(keys), "tensor")} with {what} for '
                             f'{metadata["model_name"]}{_kwargs_text(metadata)}: '
                             f'{", ".join(keys[:SHOWN])}{" ..." if len(keys) > SHOWN else ""}')
    if metadata['contents'] == 'full':
        missing = [k for k in own if k not in state]
        if missing:
            raise SegKdError(f'{path}: lacks {plural(len(missing), "tensor")} of '
                             f'{metadata["model_name"]}: {", ".join(missing[:SHOWN])}'
                             f'{" ..." if len(missing) > SHOWN else ""}')
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)


def plural(count: int, word: str) -> str:
    """`1 tensor`, `3 tensors`."""
    return f'{count} {word}{"" if count == 1 else "s"}'


def _kwargs_text(metadata: dict) -> str:
    kwargs = metadata['model_kwargs']
    return f' ({", ".join(f"{k}={v}" for k, v in kwargs.items())})' if kwargs else ''
