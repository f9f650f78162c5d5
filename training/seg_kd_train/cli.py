"""The `seg-kd` command line: one sub-command per step of the pipeline.

Each sub-command lives in `seg_kd_train.commands.<name>` and exposes `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `seg-kd --help` stays
fast and a command never pays for another's imports (torch, rclpy).

A user's mistake (a `SegKdError`, or one of the few error types of modules that cannot depend on
`seg_kd_train.errors`, listed in `TRANSLATED`) is printed as one line,
`seg-kd <command>: error: <message>`, on stderr with exit status 2; anything else is a bug and
keeps its traceback.
"""

import argparse
import importlib
import sys

from seg_kd_train.errors import SegKdError

USER_ERROR_STATUS = 2
# (module, class) of user errors raised by code that does not import seg_kd_train.errors: the
# runtime (model files), the recipe schema and the bag reader. Looked up only if imported.
TRANSLATED = (
    ('seg_kd_train.config', 'RecipeError'),
    ('seg_kd_train.bags.reader', 'BagError'),
    ('seg_kd_ros.model_metadata', 'MetadataError'),
    ('seg_kd_ros.backends', 'ModelLoadError'),
)

COMMANDS = {
    'synth': 'generate synthetic adverse-weather street scenes in the ACDC layout',
    'train': 'train a teacher or a plain student from a recipe',
    'distill': 'distil a student from a frozen teacher from a recipe',
    'eval': 'evaluate a checkpoint: mIoU per condition, per-class IoU, ECE, a Markdown report',
    'import-checkpoint': "convert the authors' PIDNet or SwiftNet checkpoint to a weights file",
    'export': 'export a checkpoint to ONNX with the deploy head and metadata',
    'build-engine': 'build a TensorRT engine from an exported ONNX',
    'bench': 'benchmark students and backends: latency, FPS, memory',
    'make-bag': 'write a dataset split into a ros2 bag',
    'bag-eval': 'play a bag into a running segmenter_node and score its outputs',
}


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage mistakes are one line (the usage itself is in --help)."""

    def error(self, message: str):
        """Raise a `SegKdError` instead of printing the usage and exiting."""
        raise SegKdError(f'{message} (see {self.prog} --help)')


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; each command's own arguments are added when it is chosen."""
    parser = CommandParser(prog='seg-kd', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is a user's mistake (one line) rather than a bug (a traceback)."""
    if isinstance(exc, SegKdError):
        return True
    for module, name in TRANSLATED:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def one_line(message: str) -> str:
    """A message on one line: line breaks in it become '; '."""
    return '; '.join(part.strip() for part in str(message).splitlines() if part.strip())


def close_progress_bars() -> None:
    """Close the tqdm bars a failure left open, so the error line starts a line of its own."""
    tqdm = getattr(sys.modules.get('tqdm'), 'tqdm', None)
    for bar in list(getattr(tqdm, '_instances', ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    """Run one `seg-kd` sub-command; a user's mistake is one line on stderr and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    prog = 'seg-kd'
    try:
        if not argv or argv[0] not in COMMANDS:
            build_parser().parse_args(argv)  # --help, or the error for a missing/unknown command
            return USER_ERROR_STATUS
        name = argv[0]
        prog = f'seg-kd {name}'
        module = importlib.import_module('seg_kd_train.commands.' + name.replace('-', '_'))
        command_parser = CommandParser(prog=prog, description=COMMANDS[name])
        module.add_arguments(command_parser)
        args = command_parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a user's mistake
        if not is_user_error(exc):
            raise
        close_progress_bars()
        print(f'{prog}: error: {one_line(exc)}', file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == '__main__':
    sys.exit(main())
