"""Model weights as safetensors files that carry what is needed to rebuild the model.

A weights file holds the model's state dict and, in the safetensors metadata, the registry name,
the number of classes and the build keyword arguments (JSON). Nothing is unpickled, so a file from
an untrusted source cannot run code.
"""

import json
from pathlib import Path

from safetensors.torch import load_file, safe_open, save_file
import torch
from torch import nn


def save_model_weights(path: str | Path, model: nn.Module, model_name: str, num_classes: int,
                       model_kwargs: dict | None = None, extra: dict | None = None) -> None:
    """Write `model`'s weights and its build arguments to `path` atomically.

    Args:
        path: destination `.safetensors` file.
        model: the model whose `state_dict()` is saved.
        model_name: name in the model registry (`build_model`).
        num_classes: number of output classes.
        model_kwargs: further keyword arguments given to `build_model`.
        extra: more string-valued metadata to store (e.g. the recipe name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        'model_name': model_name,
        'num_classes': str(num_classes),
        'model_kwargs': json.dumps(model_kwargs or {}),
    }
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    # safetensors refuses tensors that share storage; clone makes each one its own.
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + '.tmp')
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)


def read_weights_metadata(path: str | Path) -> dict:
    """Return a weights file's metadata, with `num_classes` and `model_kwargs` parsed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'weights file not found: {path}')
    with safe_open(str(path), framework='pt') as f:
        metadata = dict(f.metadata() or {})
    if 'model_name' not in metadata:
        raise ValueError(f'{path} has no model_name in its metadata: '
                         'not written by save_model_weights')
    metadata['num_classes'] = int(metadata['num_classes'])
    metadata['model_kwargs'] = json.loads(metadata.get('model_kwargs', '{}'))
    return metadata


def load_model_weights(path: str | Path, map_location: str | torch.device = 'cpu') -> nn.Module:
    """Rebuild the model described by a weights file and load its weights (strictly)."""
    from seg_kd_train.models import build_model

    metadata = read_weights_metadata(path)
    model = build_model(metadata['model_name'], num_classes=metadata['num_classes'],
                        pretrained=False, **metadata['model_kwargs'])
    model.load_state_dict(load_file(str(path), device=str(map_location)))
    return model
