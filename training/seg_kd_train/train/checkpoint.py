"""Checkpoints: model weights files for users and one training-state file for exact resume.

`runs/<name>/last.safetensors` and `best.safetensors` are model weights files
(`save_model_weights`: the student only, never the adapters). `last_state.safetensors` holds
everything needed to continue bit-for-bit: the trainable task (student + adapters), the
optimiser, the LR scheduler, the AMP grad scaler, the RNG states (torch, CUDA, numpy, python), the
step and the best score. Tensors are stored as tensors; everything else as JSON in the file's
metadata (a copy is written beside it as `last_state.json` to read). Each file is written to a
temporary name and moved into place (`seg_kd_ros.atomic_files`): a kill leaves the previous one
intact, and the file gets the umask's mode.
"""

import json
from pathlib import Path
import random

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file
import torch
from torch import nn

from seg_kd_ros.atomic_files import atomic_write
from seg_kd_train.models.weights import save_tensors

STATE_KEY = 'seg_kd_train_state'


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {'rng.torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f'rng.cuda.{i}'] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors['rng.numpy'] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    info = {'numpy': [kind, int(pos), int(has_gauss), float(cached)],
            'python': [version, list(internal), gauss]}
    return tensors, info


def _set_rng_state(tensors: dict[str, torch.Tensor], info: dict) -> None:
    torch.set_rng_state(tensors['rng.torch'])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith('rng.cuda.'))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    kind, pos, has_gauss, cached = info['numpy']
    np.random.set_state((kind, tensors['rng.numpy'].numpy().astype(np.uint32), pos, has_gauss,
                         cached))
    version, internal, gauss = info['python']
    random.setstate((version, tuple(internal), gauss))


def save_training_state(path: str | Path, task: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler, scaler, step: int, extra: dict) -> None:
    """Write the full training state to `path` (a safetensors file) and `path.json`."""
    path = Path(path)
    tensors = {f'task.{k}': v for k, v in task.state_dict().items()}
    opt = optimizer.state_dict()
    opt_json: dict = {'param_groups': opt['param_groups'], 'state': {}}
    for pid, entries in opt['state'].items():
        opt_json['state'][str(pid)] = {}
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f'optim.{pid}.{name}'] = value
            else:
                opt_json['state'][str(pid)][name] = value
    rng_tensors, rng_info = _rng_state()
    tensors.update(rng_tensors)
    sched = {k: v for k, v in scheduler.state_dict().items() if k != 'lr_lambdas'}
    state = {'step': int(step), 'optimizer': opt_json, 'scheduler': sched,
             'scaler': scaler.state_dict(), 'rng': rng_info, 'extra': extra}
    text = json.dumps(state)
    save_tensors(path, tensors, {STATE_KEY: text})
    readable = dict(state, rng='(in the safetensors file)')
    atomic_write(path.with_suffix('.json'), json.dumps(readable, indent=1).encode())


def load_training_state(path: str | Path, task: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler, scaler) -> tuple[int, dict]:
    """Restore everything `save_training_state` wrote; return (step, extra)."""
    path = Path(path)
    with safe_open(str(path), framework='pt') as f:
        meta = f.metadata() or {}
    if STATE_KEY not in meta:
        raise ValueError(f'{path} is not a training-state file (no {STATE_KEY} metadata)')
    state = json.loads(meta[STATE_KEY])
    tensors = load_file(str(path))
    task_state = {k[5:]: v for k, v in tensors.items() if k.startswith('task.')}
    missing, unexpected = task.load_state_dict(task_state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not match this recipe's model: missing {missing[:5]}, "
                         f'unexpected {unexpected[:5]}')
    opt_state = {}
    for pid, entries in state['optimizer']['state'].items():
        opt_state[int(pid)] = dict(entries)
    for key, value in tensors.items():
        if key.startswith('optim.'):
            _, pid, name = key.split('.', 2)
            opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({'state': opt_state,
                               'param_groups': state['optimizer']['param_groups']})
    sched = dict(state['scheduler'])
    sched['lr_lambdas'] = [None] * len(optimizer.param_groups)
    scheduler.load_state_dict(sched)
    if state['scaler']:
        scaler.load_state_dict(state['scaler'])
    _set_rng_state(tensors, state['rng'])
    return int(state['step']), state['extra']
