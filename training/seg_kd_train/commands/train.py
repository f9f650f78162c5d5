"""`seg-kd train`: train a teacher or a plain student from a recipe."""

import argparse

from seg_kd_train.commands.arguments import (
    add_recipe_arguments,
    check_torch_device,
    writable_output,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd train`."""
    add_recipe_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train the recipe's model on ground truth."""
    from seg_kd_train.train.launch import start_run

    args.teacher = None
    check_torch_device(args.device)
    writable_output(args.runs, '--runs')
    return start_run(args, distill=False)
