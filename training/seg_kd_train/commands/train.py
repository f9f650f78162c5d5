"""`seg-kd train`: train a teacher or a plain student from a recipe."""

import argparse
from pathlib import Path

import yaml


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `seg-kd train` and `seg-kd distill`."""
    parser.add_argument('recipe', type=Path, help='recipe YAML (config/recipes/*.yaml)')
    parser.add_argument('--data', help='dataset root (overrides data.root)')
    parser.add_argument('--runs', type=Path, default=Path('runs'),
                        help='parent of the run directory runs/<name> (default: runs)')
    parser.add_argument('--name', help='run name (overrides the recipe name)')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda if available)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from runs/<name>/last_state.safetensors if it exists')
    parser.add_argument('--steps', type=int, help='override train.steps')
    parser.add_argument('--stop-after', type=int, metavar='N',
                        help='stop after global step N without a final checkpoint (as a kill)')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override a recipe value, e.g. --set data.batch_size=4 (repeatable)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--threads', type=int,
                        help="torch intra-op threads (default: torch's; 1 is best on a busy CPU)")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Dotted overrides from --data, --name, --steps and --set."""
    overrides: dict = {}
    for item in args.set:
        if '=' not in item:
            raise SystemExit(f'--set needs KEY=VALUE, got {item!r}')
        key, value = item.split('=', 1)
        overrides[key.strip()] = yaml.safe_load(value)
    if args.data:
        overrides['data.root'] = args.data
    if args.name:
        overrides['name'] = args.name
    if args.steps:
        overrides['train.steps'] = args.steps
    return overrides


def run_recipe(args: argparse.Namespace, distill: bool) -> int:
    """Load the recipe, check it fits the command, train, print the final numbers."""
    from seg_kd_train.config import RecipeError, load_recipe

    overrides = overrides_from_args(args)
    if distill and getattr(args, 'teacher', None):
        overrides['teacher.weights'] = str(args.teacher)
    try:
        recipe = load_recipe(args.recipe, overrides)
    except RecipeError as exc:
        raise SystemExit(f'error: {exc}') from None
    if distill and not recipe.distill:
        raise SystemExit(f'error: {args.recipe} has no `distill` terms; use `seg-kd train`')
    if not distill and recipe.distill:
        raise SystemExit(f'error: {args.recipe} has `distill` terms; use `seg-kd distill`')
    import torch

    from seg_kd_train.train.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)

    trainer = Trainer(recipe, args.runs / recipe.name, device=args.device, resume=args.resume,
                      stop_after=args.stop_after,
                      progress=False if args.no_progress else None)
    metrics = trainer.run()
    if trainer.is_main:
        print(f'run directory: {trainer.run_dir}  (step {trainer.step}/{recipe.train.steps})')
        for key, value in metrics.items():
            print(f'  {key}: {value:.4f}')
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd train`."""
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train the recipe's model on ground truth."""
    return run_recipe(args, distill=False)
