"""Start a run from a recipe file: what `seg-kd train` and `seg-kd distill` do after parsing."""

import argparse
from pathlib import Path

import yaml

from seg_kd_train.config import Recipe, load_recipe
from seg_kd_train.errors import SegKdError


def parse_overrides(items: list[str]) -> dict:
    """`['data.batch_size=4', ...]` -> `{'data.batch_size': 4}` (values read as YAML)."""
    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise SegKdError(f'--set {item}: needs KEY=VALUE, e.g. --set data.batch_size=4')
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise SegKdError(f'--set {item}: the value is not valid YAML '
                             f'({_yaml_problem(exc)})') from None
    return overrides


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, 'problem_mark', None)
    where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
    return where + (getattr(exc, 'problem', None) or str(exc).splitlines()[0])


def load_run_recipe(path: Path, overrides: dict, distill: bool) -> Recipe:
    """Read and validate a recipe for `seg-kd train` (`distill=False`) or `seg-kd distill`.

    Raises:
        SegKdError: a missing or unreadable file, a YAML syntax error, or a recipe that belongs
            to the other command. (A wrong key is the schema's `RecipeError`.)
    """
    if not path.is_file():
        raise SegKdError(f'recipe {path}: no such file (recipes are in config/recipes/)')
    try:
        recipe = load_recipe(path, overrides)
    except yaml.YAMLError as exc:
        raise SegKdError(f'recipe {path}: YAML syntax error at {_yaml_problem(exc)}') from None
    except OSError as exc:
        raise SegKdError(f'recipe {path}: cannot read it ({exc.strerror})') from None
    if distill and not recipe.distill:
        raise SegKdError(f'{path} has no `distill` terms; use `seg-kd train`')
    if not distill and recipe.distill:
        raise SegKdError(f'{path} has `distill` terms; use `seg-kd distill`')
    return recipe


def start_run(args: argparse.Namespace, distill: bool) -> int:
    """Check everything a run needs, train, print where it went and its last numbers.

    `args` are `seg-kd train`'s or `seg-kd distill`'s (`add_recipe_arguments`): the recipe path,
    `data`, `name`, `steps`, `set`, `teacher` (distill), `runs`, `device`, `resume`,
    `stop_after`, `no_progress`, `threads`. The recipe is checked first, then its data (before
    any model is built: `Trainer`).
    """
    overrides = parse_overrides(args.set)
    if args.data:
        overrides['data.root'] = args.data
    if args.name:
        overrides['name'] = args.name
    if args.steps:
        overrides['train.steps'] = args.steps
    if distill and args.teacher:
        overrides['teacher.weights'] = str(args.teacher)
    recipe = load_run_recipe(args.recipe, overrides, distill)
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
