"""What every `seg-kd` command parses the same way: image sizes, devices, input and output paths.

Sizes are always HEIGHTxWIDTH (as the network's input and PyTorch tensors are ordered), in every
command and every `--help`. Paths are checked before any work starts, so a command never runs for
minutes and then finds it cannot read its input or write its result.
"""

import argparse
import math
import os
from pathlib import Path

from seg_kd_ros.backends import DEVICE_PATTERN
from seg_kd_train.errors import SegKdError

SIZE_METAVAR = 'HxW'
SIZE_HELP = 'HEIGHTxWIDTH in pixels, e.g. 512x1024'
DEVICE_HELP = "'cpu', 'cuda' or 'cuda:N'"


def image_size(text: str) -> tuple[int, int]:
    """'HxW' -> (height, width), both positive (an argparse `type`)."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'size must be HxW (e.g. 512x1024), got {text!r}: height x width in pixels'
        ) from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f'{text!r}: height and width must be > 0')
    return height, width


def image_sizes(text: str) -> list[tuple[int, int]]:
    """A comma-separated list of 'HxW' sizes (an argparse `type`)."""
    return [image_size(s.strip()) for s in text.split(',') if s.strip()]


def positive_int(text: str) -> int:
    """An integer >= 1 (an argparse `type`)."""
    return at_least(1)(text)


def at_least(low: int):
    """An argparse `type`: an integer >= `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'must be >= {low}, got {value}')
        return value
    return parse


def positive_float(text: str) -> float:
    """A finite number > 0 (an argparse `type`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'must be a finite number > 0, got {text}')
    return value


def names(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (an argparse `type`)."""
    return [t.strip() for t in text.split(',') if t.strip()]


def device(text: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' (an argparse `type`); whether it exists is `check_device`'s."""
    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f'{text!r} is not a device: use {DEVICE_HELP}')
    return text


def check_torch_device(name: str | None, option: str = '--device') -> None:
    """Refuse a CUDA device that PyTorch cannot use on this machine, naming what to do."""
    if name is None or name == 'cpu':
        return
    import torch

    if not torch.cuda.is_available():
        raise SegKdError(f'{option} {name}: PyTorch sees no CUDA GPU here '
                         f'(torch {torch.__version__}); use {option} cpu')
    index = int(name.split(':')[1]) if ':' in name else 0
    if index >= torch.cuda.device_count():
        raise SegKdError(f'{option} {name}: this machine has {torch.cuda.device_count()} '
                         f'CUDA device(s), numbered from 0')


def existing_file(path: Path, option: str) -> Path:
    """`path` if it is a readable file; else a `SegKdError` naming the option."""
    if not path.exists():
        raise SegKdError(f'{option} {path}: no such file')
    if not path.is_file():
        raise SegKdError(f'{option} {path}: not a file')
    if not os.access(path, os.R_OK):
        raise SegKdError(f'{option} {path}: not readable (check its permissions)')
    return path


def writable_output(path: Path, option: str) -> Path:
    """Check that `path` (a file or folder to be created) can be written; nothing is created.

    The nearest existing ancestor must be a writable folder; `path` itself, if it exists, must
    not be a file where a folder is expected and vice versa is left to the caller.
    """
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent != path and not parent.is_dir():
        raise SegKdError(f'{option} {path}: {parent} is a file, not a folder; choose another '
                         f'{option}')
    folder = parent if parent.is_dir() else parent.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SegKdError(f'{option} {path}: cannot write in {folder} (read-only or no '
                         f'permission); choose another {option}')
    return path


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd train` and `seg-kd distill`."""
    parser.add_argument('recipe', type=Path, help='recipe YAML (config/recipes/*.yaml)')
    parser.add_argument('--data', help='dataset root (overrides data.root)')
    parser.add_argument('--runs', type=Path, default=Path('runs'),
                        help='parent of the run directory runs/<name> (default: runs)')
    parser.add_argument('--name', help='run name (overrides the recipe name)')
    parser.add_argument('--device', type=device,
                        help=f'{DEVICE_HELP} (default: cuda if available)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from runs/<name>/last_state.safetensors if it exists')
    parser.add_argument('--steps', type=positive_int, help='override train.steps')
    parser.add_argument('--stop-after', type=int, metavar='N',
                        help='stop after global step N without a final checkpoint (as a kill)')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a recipe value, e.g. --set data.batch_size=4 (repeatable)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--threads', type=positive_int,
                        help="torch intra-op threads (default: torch's; 1 is best on a busy CPU)")
