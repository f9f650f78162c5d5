"""`seg-kd distill`: distil a student from a frozen teacher (recipe with `distill` terms)."""

import argparse
from pathlib import Path

from seg_kd_train.commands.arguments import (
    add_recipe_arguments,
    check_torch_device,
    writable_output,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd distill`."""
    add_recipe_arguments(parser)
    parser.add_argument('--teacher', type=Path,
                        help='teacher weights (.safetensors) or ONNX with a logits output '
                             '(overrides teacher.weights)')


def run(args: argparse.Namespace) -> int:
    """Distil the recipe's student."""
    from seg_kd_train.train.launch import start_run

    check_torch_device(args.device)
    writable_output(args.runs, '--runs')
    return start_run(args, distill=True)
