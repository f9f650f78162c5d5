"""The `seg-kd` command line: one sub-command per step of the pipeline.

Each sub-command lives in `seg_kd_train.commands.<name>` and exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `seg-kd --help` stays
fast and a command never pays for another's imports (torch, rclpy).
"""

import argparse
import importlib
import sys

COMMANDS = {
    'synth': 'generate synthetic adverse-weather street scenes in the ACDC layout',
    'train': 'train a teacher or a plain student from a recipe',
    'distill': 'distil a student from a frozen teacher from a recipe',
    'eval': 'evaluate a checkpoint: mIoU per condition, per-class IoU, ECE, a Markdown report',
    'export': 'export a checkpoint to ONNX with the deploy head and metadata',
    'build-engine': 'build a TensorRT engine from an exported ONNX',
    'bench': 'benchmark students and backends: latency, FPS, memory',
    'make-bag': 'write a dataset split into a ros2 bag',
    'bag-eval': 'play a bag into a running segmenter_node and score its outputs',
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; each command's own arguments are added when it is chosen."""
    parser = argparse.ArgumentParser(prog='seg-kd', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `seg-kd` sub-command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage or the error for an unknown command
        return 2
    name = argv[0]
    module = importlib.import_module('seg_kd_train.commands.' + name.replace('-', '_'))
    command_parser = argparse.ArgumentParser(prog=f'seg-kd {name}', description=COMMANDS[name])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
