"""Training recipes: typed dataclasses read from one flat YAML file per experiment.

A recipe has a few top-level sections (`model`, `data`, `train`, `loss`, optionally `teacher` and
`distill`), each a plain mapping of values; there is no inheritance and no include. Every key is
checked against the dataclass fields: an unknown or mistyped key, or a value of the wrong type, is
an error that names the file and the dotted key.
"""

from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
import difflib
from pathlib import Path
import types
import typing
from typing import Any

import yaml

from seg_kd_ros.atomic_files import atomic_path
from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.data.factory import DATASETS


class RecipeError(ValueError):
    """A recipe file has an unknown key, a wrong type or an inconsistent value."""


@dataclass
class ModelConfig:
    """The network to train (the student when distilling).

    `pretrained`: `imagenet` (timm's ImageNet backbone weights; none exist for PIDNet), `none`,
    or the path of a `.safetensors` weights file (`seg-kd import-checkpoint`, `seg-kd train`).
    Older recipes' `true` / `false` read as `imagenet` / `none`.
    """

    name: str
    num_classes: int = 19
    pretrained: str = 'none'
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExtraData:
    """Another dataset whose training split is appended to the recipe's (`data.extra_train`)."""

    dataset: str  # acdc | cityscapes | bdd100k
    root: str
    split: str = 'train'
    conditions: list[str] | None = None  # acdc only; None: fog, night, rain, snow


@dataclass
class DataConfig:
    """Where the images are and how they are sampled and augmented.

    Every training crop is: scaled by a factor from `scale_range`, cropped to `crop_size` (padded
    with the ignore label), flipped with `hflip_prob`, rendered in a synthetic weather from
    `weather_conditions` with `weather_prob`, and colour-jittered with `jitter_prob` by
    `jitter` = (brightness, contrast, saturation, hue) amplitudes. Evaluation is never augmented.
    """

    root: str = 'data/synth'
    dataset: str = 'acdc'  # acdc | cityscapes | bdd100k
    train_split: str = 'train'
    val_split: str = 'val'
    conditions: list[str] | None = None  # acdc only; None: fog, night, rain, snow
    extra_train: list[ExtraData] = field(default_factory=list)  # appended to the training set
    crop_size: list[int] = field(default_factory=lambda: [768, 768])  # h, w
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    hflip_prob: float = 0.5
    jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.02])
    jitter_prob: float = 0.8
    weather_prob: float = 0.0
    weather_conditions: list[str] = field(default_factory=lambda: ['fog', 'night', 'rain',
                                                                   'snow'])
    eval_size: list[int] | None = None  # h, w; None keeps the native size
    batch_size: int = 8
    num_workers: int = 2
    max_val_images: int = 0  # 0: all


@dataclass
class TrainConfig:
    """Optimisation: steps, optimiser, schedule, precision, evaluation and checkpoint cadence."""

    steps: int = 1000
    grad_accum: int = 1
    optimizer: str = 'adam'  # adam | adamw | sgd
    lr: float = 4e-4
    backbone_lr_mult: float = 0.25
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = 'cosine'  # cosine | poly | constant
    min_lr: float = 1e-6
    poly_power: float = 0.9
    warmup_steps: int = 0
    amp: bool = True  # used on CUDA only
    grad_clip: float = 0.0  # 0: off
    eval_every: int = 500
    ckpt_every: int = 100
    log_every: int = 10
    deterministic: bool = False
    progress: bool = True


@dataclass
class LossConfig:
    """The supervised (ground-truth) loss."""

    name: str = 'border'  # ce | ohem | border | pidnet
    weight: float = 1.0
    ignore_index: int = IGNORE_INDEX
    border_bins: list[float] = field(default_factory=lambda: [4.0, 16.0, 64.0, 128.0])
    border_alphas: list[float] = field(default_factory=lambda: [8.0, 6.0, 4.0, 2.0, 1.0])
    focal_gamma: float = 0.5
    ohem_thresh: float = 0.9
    ohem_min_kept: int = 131072


@dataclass
class TeacherConfig:
    """The frozen teacher: a weights file (`save_model_weights`) or an ONNX with `logits`."""

    weights: str = ''
    half: bool = False  # fp16 teacher on CUDA


@dataclass
class DistillTerm:
    """One distillation term: a loss between a student tap and a teacher tap."""

    type: str  # kl | cwd | l2 | lad
    student: str = 'logits'  # tap name, or 'logits'
    teacher: str = 'logits'
    weight: float = 1.0
    temperature: float = 1.0
    adapter: str = 'auto'  # auto (when channels differ) | conv | conv_bn | none
    name: str = ''  # defaults to '<type>_<student>'


@dataclass
class Recipe:
    """A whole experiment."""

    name: str
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    teacher: TeacherConfig | None = None
    distill: list[DistillTerm] = field(default_factory=list)
    seed: int = 0
    description: str = ''


CHOICES = {
    'data.dataset': DATASETS,
    'data.extra_train.dataset': DATASETS,
    'train.optimizer': ('adam', 'adamw', 'sgd'),
    'train.schedule': ('cosine', 'poly', 'constant'),
    'loss.name': ('ce', 'ohem', 'border', 'pidnet'),
    'distill.type': ('kl', 'cwd', 'l2', 'lad'),
    'distill.adapter': ('auto', 'conv', 'conv_bn', 'none'),
}


def _type_name(tp: Any) -> str:
    return getattr(tp, '__name__', None) or str(tp).replace('typing.', '')


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp` (recursively) and return it converted."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, source)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f'{source}: `{key}` must be a mapping, got {value!r}')
        return _build(tp, value, key, source)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f'{source}: `{key}` must be a list, got {value!r}')
        return [_convert(v, args[0], f'{key}[{i}]', source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f'{source}: `{key}` must be a mapping, got {value!r}')
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 4e-4 as a string
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool):
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
            raise RecipeError(f'{source}: `{key}` must be {_type_name(tp)}, got {value!r}')
        return value
    raise RecipeError(f'{source}: `{key}`: unsupported type {tp}')


def _build(cls: type, data: dict, prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            dotted = f'{prefix}.{key}' if prefix else key
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f' (did you mean `{close[0]}`?)' if close else ''
            raise RecipeError(f'{source}: unknown key `{dotted}`{hint}; allowed: '
                              f'{", ".join(names)}')
    kwargs = {}
    for f in fields(cls):
        dotted = f'{prefix}.{f.name}' if prefix else f.name
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], dotted, source)
            choice_key = f'{prefix.split("[")[0]}.{f.name}' if prefix else f.name
            if choice_key in CHOICES and kwargs[f.name] not in CHOICES[choice_key]:
                raise RecipeError(f'{source}: `{dotted}` is {kwargs[f.name]!r}; choose one of '
                                  f'{", ".join(CHOICES[choice_key])}')
        elif f.default is MISSING and f.default_factory is MISSING:
            raise RecipeError(f'{source}: missing required key `{dotted}`')
    return cls(**kwargs)


def _validate_data(d: DataConfig, source: str) -> None:
    from seg_kd_train.data.synth.weather import CONDITIONS

    if len(d.crop_size) != 2 or len(d.scale_range) != 2:
        raise RecipeError(f'{source}: `data.crop_size` and `data.scale_range` need two values')
    if min(d.crop_size) < 1 or not 0 < d.scale_range[0] <= d.scale_range[1]:
        raise RecipeError(f'{source}: `data.crop_size` must be > 0 and `data.scale_range` '
                          f'0 < low <= high, got {d.crop_size} and {d.scale_range}')
    for key, value in (('hflip_prob', d.hflip_prob), ('jitter_prob', d.jitter_prob),
                       ('weather_prob', d.weather_prob)):
        if not 0.0 <= value <= 1.0:
            raise RecipeError(f'{source}: `data.{key}` is a probability in [0, 1], got {value}')
    if len(d.jitter) != 4 or min(d.jitter) < 0 or max(d.jitter[:3]) >= 1 or d.jitter[3] > 0.5:
        raise RecipeError(f'{source}: `data.jitter` needs 4 amplitudes (brightness, contrast, '
                          f'saturation in [0, 1), hue in [0, 0.5]), got {d.jitter}')
    weathers = [c for c in CONDITIONS if c != 'clear']
    if not d.weather_conditions or set(d.weather_conditions) - set(weathers):
        raise RecipeError(f'{source}: `data.weather_conditions` must name some of '
                          f'{", ".join(weathers)}, got {d.weather_conditions}')
    for key, part in [('data', d)] + [(f'data.extra_train[{i}]', e)
                                      for i, e in enumerate(d.extra_train)]:
        if part.conditions is not None and part.dataset != 'acdc':
            raise RecipeError(f'{source}: `{key}.conditions` applies to acdc only; '
                              f'{part.dataset} has none (remove the key)')
        if part.conditions is not None and not part.conditions:
            raise RecipeError(f'{source}: `{key}.conditions` is empty; name some or remove it')


def _validate(recipe: Recipe, source: str) -> None:
    pretrained = recipe.model.pretrained
    if pretrained not in ('imagenet', 'none') and not pretrained.endswith('.safetensors'):
        raise RecipeError(f'{source}: `model.pretrained` is {pretrained!r}; choose imagenet, none '
                          "or the path of a .safetensors weights file (the authors' checkpoints "
                          'become one with `seg-kd import-checkpoint`)')
    d, t = recipe.data, recipe.train
    _validate_data(d, source)
    if d.eval_size is not None and len(d.eval_size) != 2:
        raise RecipeError(f'{source}: `data.eval_size` needs two values (h, w) or null')
    for key, value in (('train.steps', t.steps), ('train.grad_accum', t.grad_accum),
                       ('data.batch_size', d.batch_size), ('train.eval_every', t.eval_every),
                       ('train.ckpt_every', t.ckpt_every), ('train.log_every', t.log_every)):
        if value < 1:
            raise RecipeError(f'{source}: `{key}` must be >= 1, got {value}')
    if recipe.distill and (recipe.teacher is None or not recipe.teacher.weights):
        raise RecipeError(f'{source}: `distill` terms need `teacher.weights`')
    if len(recipe.loss.border_alphas) != len(recipe.loss.border_bins) + 1:
        raise RecipeError(f'{source}: `loss.border_alphas` needs one more value than '
                          f'`loss.border_bins`')


def recipe_from_dict(data: dict, source: str = '<dict>') -> Recipe:
    """Build and validate a recipe from a mapping; `source` names it in errors."""
    if not isinstance(data, dict):
        raise RecipeError(f'{source}: a recipe must be a mapping at the top level')
    model = data.get('model')
    if isinstance(model, dict) and isinstance(model.get('pretrained'), bool):
        # recipes written before `pretrained` took a path
        model = {**model, 'pretrained': 'imagenet' if model['pretrained'] else 'none'}
        data = {**data, 'model': model}
    recipe = _build(Recipe, data, '', source)
    _validate(recipe, source)
    return recipe


def load_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """Read a recipe YAML file, apply dotted `overrides` ({'data.root': ...}), validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'recipe not found: {path}')
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split('.')
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return recipe_from_dict(data, str(path))


def recipe_to_dict(recipe: Recipe) -> dict:
    """The resolved recipe as plain data (every default filled in)."""
    return asdict(recipe)


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
