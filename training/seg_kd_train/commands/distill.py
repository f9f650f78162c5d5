"""`seg-kd distill`: distil a student from a frozen teacher (recipe with `distill` terms)."""

import argparse
from pathlib import Path

from seg_kd_train.commands.train import add_common_arguments, run_recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd distill`."""
    add_common_arguments(parser)
    parser.add_argument('--teacher', type=Path,
                        help='teacher weights (.safetensors) or ONNX with a logits output '
                             '(overrides teacher.weights)')


def run(args: argparse.Namespace) -> int:
    """Distil the recipe's student."""
    return run_recipe(args, distill=True)
