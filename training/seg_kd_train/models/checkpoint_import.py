"""The authors' PIDNet and SwiftNet checkpoints as weights files of this project.

PIDNet (github.com/XuJiacong/PIDNet): the ImageNet checkpoints (`PIDNet_S_ImageNet.pth.tar`, a
`state_dict` entry: the backbone of the segmentation model plus an ImageNet classifier, left out
here) and the Cityscapes ones (`PIDNet_S_Cityscapes_val.pt`: the whole model under the `model.`
prefix of their training wrapper, the training loss's class weights beside it). Module names are
this project's; only the auxiliary heads are renamed (`seghead_p`, `seghead_d`). The authors
upsample the logits with `align_corners=True` in training and evaluation; imported models do too.

SwiftNet (github.com/orsic/swiftnet): the ResNet-18 single-scale and pyramid Cityscapes models
(`SemsegModel` state dicts: `backbone.*` and `logits.*`). The backbone carries the normalisation it
was trained with (`img_mean`, `img_std`, 0-255 pixels): it becomes the model's `pixel_mean` /
`pixel_std` build arguments, applied inside the model (`swiftnet_layers.Renormalise`).

Files are read with `torch.load(weights_only=True)` only: nothing in them can run code.
"""

from dataclasses import dataclass, field
from pathlib import Path
import pickle
import re

import torch

from seg_kd_train.errors import SegKdError
from seg_kd_train.models.weights import SHOWN, plural

SOURCES = ('pidnet', 'swiftnet')
REPOS = {'pidnet': 'github.com/XuJiacong/PIDNet', 'swiftnet': 'github.com/orsic/swiftnet'}
# keys of the authors' files that are no part of the segmentation model
PIDNET_LEFT_OUT = ('sem_loss.', 'bd_loss.',  # class-weight buffers of their training losses
                   'down4.', 'down5.', 'last_layer.', 'linear.')  # their ImageNet classifier
PIDNET_HEADS = {'seghead_p.': 'aux_heads.p_logits.', 'seghead_d.': 'aux_heads.boundary.'}


@dataclass
class Imported:
    """A converted checkpoint, ready for `save_state_dict`.

    Attributes:
        model_name: registry name.
        num_classes: classes of its classifier (of `--classes` for a backbone-only file).
        model_kwargs: build arguments the weights need.
        state: tensors by this project's names.
        contents: `full` or `backbone`.
        source: `pidnet` or `swiftnet`.
        normalisation: `mean` / `std` ([0, 1] units) the model's input is normalised with, plus
            the authors' own where the model converts to it.
        left_out: keys of the file that are no part of the model (named in the summary).
        origin: the file's name of each key of `state` (errors name the file's keys).
    """

    model_name: str
    num_classes: int
    model_kwargs: dict
    state: dict[str, torch.Tensor]
    contents: str
    source: str
    normalisation: dict
    left_out: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)


def _names(keys: list[str]) -> str:
    return ', '.join(keys[:SHOWN]) + (' ...' if len(keys) > SHOWN else '')


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.pt` / `.pth` / `.pth.tar` file, without `module.` / `model.` prefixes.

    A `state_dict` entry is used when there is one; non-tensor entries (epoch, ...) are dropped.

    Raises:
        SegKdError: a missing file, one that needs more than weights-only unpickling, or one
            without tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise SegKdError(f'checkpoint not found: {path}')
    try:
        data = torch.load(str(path), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or ['?'])[0]
        raise SegKdError(
            f'{path}: refused, it needs more than weights-only unpickling ({first[:120]}); if you '
            'trust it, re-save its state dict alone with torch.save and import that') from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file it cannot parse
        raise SegKdError(f'{path}: not a PyTorch checkpoint ({type(exc).__name__}: '
                         f'{(str(exc).strip().splitlines() or ["?"])[0][:120]})') from None
    if isinstance(data, dict) and isinstance(data.get('state_dict'), dict):
        data = data['state_dict']
    if not isinstance(data, dict):
        raise SegKdError(f'{path}: holds a {type(data).__name__}, not a state dict')
    state = {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            key = str(key)
            while key.startswith(('module.', 'model.')):  # DataParallel, PIDNet's FullModel
                key = key.split('.', 1)[1]
            state[key] = value
    if not state:
        raise SegKdError(f'{path}: no tensors in it (entries: {_names([str(k) for k in data])})')
    return state


def detect_source(state: dict[str, torch.Tensor]) -> str:
    """`pidnet` or `swiftnet`, from the key layout."""
    if 'conv1.0.weight' in state and any(k.startswith('layer3_.') for k in state):
        return 'pidnet'
    if any(k.startswith('backbone.layer1.') for k in state):
        return 'swiftnet'
    raise SegKdError(f"not a checkpoint of PIDNet's or SwiftNet's authors (keys: "
                     f'{_names(sorted(state))})')


def convert(state: dict[str, torch.Tensor], source: str | None = None,
            model: str | None = None, num_classes: int = 19) -> Imported:
    """Convert the authors' state dict (from `read_checkpoint`).

    Args:
        state: the tensors, prefixes removed.
        source: `pidnet` or `swiftnet`; None detects it.
        model: expected registry name; None accepts the detected one.
        num_classes: classes when the file has no classifier (an ImageNet backbone).

    Raises:
        SegKdError: another source or model than the one asked for, or keys that do not map.
    """
    found = detect_source(state)
    if source is not None and source != found:
        raise SegKdError(f'the checkpoint is a {found} checkpoint, not {source}')
    imported = _pidnet(state, num_classes) if found == 'pidnet' else _swiftnet(state)
    if model is not None and model != imported.model_name:
        raise SegKdError(f'the checkpoint holds {imported.model_name} weights, not {model}')
    check_fit(imported)
    return imported


def _pidnet(state: dict[str, torch.Tensor], num_classes: int) -> Imported:
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

    left_out = sorted(k for k in state if k.startswith(PIDNET_LEFT_OUT))
    out, origin = {}, {}
    for their_key, value in state.items():
        if their_key in left_out:
            continue
        key = their_key
        for theirs, ours in PIDNET_HEADS.items():
            if key.startswith(theirs):
                key = ours + key[len(theirs):]
        out[key], origin[key] = value, their_key
    planes = int(out['conv1.0.weight'].shape[0])
    deep = 'layer3.3.conv1.weight' in out  # n = 4: PIDNet-L
    variant = {(32, False): 's', (64, False): 'm', (64, True): 'l'}.get((planes, deep))
    if variant is None:
        raise SegKdError(f'a PIDNet with {planes} base channels and '
                         f'{"4" if deep else "3"} blocks in layer3 is none of PIDNet-S/M/L')
    full = 'final_layer.conv2.weight' in out
    if full:
        num_classes = int(out['final_layer.conv2.weight'].shape[0])
    mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    return Imported(f'pidnet_{variant}', num_classes, {'align_corners': True}, out,
                    'full' if full else 'backbone', 'pidnet', {'mean': mean, 'std': std},
                    left_out, origin)


def _swiftnet_names(key: str, pyramid: bool, bottlenecks: int) -> str:
    """This project's name for a key of the authors' SwiftNet (ResNet-18) model."""
    rules = [  # (pattern, replacement), the first match wins
        (r'^backbone\.spp\.spp\.spp_bn\.', 'spp.bottleneck.'),
        (r'^backbone\.spp\.spp\.spp_fuse\.', 'spp.fuse.'),
        (r'^backbone\.spp\.spp\.spp(\d+)\.', r'spp.levels.\1.'),
        (r'^backbone\.upsample\.(\d+)\.blend_conv\.', r'upsample.\1.blend.'),
        (r'^backbone\.upsample\.(\d+)\.bottleneck\.', r'upsample.\1.bottleneck.'),
        (r'^backbone\.upsample_blends\.(\d+)\.blend_conv\.', r'blends.\1.blend.'),
        (r'^logits\.', 'logits.'),
    ]
    if pyramid:  # one BatchNorm per scale, listed under the norm's own name in theirs
        rules += [(r'^backbone\.bn1\.(\d+)\.', r'backbone.body.bn1.copies.\1.'),
                  (r'^backbone\.(layer\d\.\d+\.bn\d)\.(\d+)\.', r'backbone.body.\1.copies.\2.')]
    rules.append((r'^backbone\.((conv1|bn1|layer\d)\.)', r'backbone.body.\1'))
    match = re.match(r'^backbone\.upsample_bottlenecks\.(\d+)\.(.*)$', key)
    if match:  # theirs run from the deepest stage; ours from the shallowest
        return f'bottlenecks.{bottlenecks - 1 - int(match[1])}.{match[2]}'
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return key  # left as it is: check_fit names it


def _swiftnet(state: dict[str, torch.Tensor]) -> Imported:
    state = dict(state)
    pyramid = any(k.startswith('backbone.upsample_blends.') for k in state)
    if 'logits.conv.weight' not in state:
        raise SegKdError('a SwiftNet checkpoint without its classifier (logits.conv.weight)')
    num_classes, num_features = (int(v) for v in state['logits.conv.weight'].shape[:2])
    # the normalisation it was trained with: image / scale, minus mean, over std (0-255 pixels)
    try:
        mean = state.pop('backbone.img_mean').flatten().double()
        std = state.pop('backbone.img_std').flatten().double()
    except KeyError:
        raise SegKdError('a SwiftNet checkpoint without backbone.img_mean / img_std: its '
                         'normalisation is unknown') from None
    scale = state.pop('backbone.img_scale', torch.ones(1)).flatten().double()
    # the float32 values, in the shortest decimals that give them back (73.15, not 73.150002)
    pixel_mean = [float(f'{float(v):.7g}') for v in mean * scale]
    pixel_std = [float(f'{float(v):.7g}') for v in std * scale]
    count = len({k.split('.')[2] for k in state if k.startswith('backbone.upsample_bottlenecks.')})
    origin = {_swiftnet_names(k, pyramid, count): k for k in state}
    out = {ours: state[theirs] for ours, theirs in origin.items()}
    kwargs = {'pixel_mean': pixel_mean, 'pixel_std': pixel_std}
    if num_features != 128:
        kwargs['num_features'] = num_features
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

    normalisation = {'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD),
                     'authors_pixel_mean': pixel_mean, 'authors_pixel_std': pixel_std}
    name = 'swiftnet_pyr_rn18' if pyramid else 'swiftnet_ss_rn18'
    return Imported(name, num_classes, kwargs, out, 'full', 'swiftnet', normalisation,
                    origin=origin)


def check_fit(imported: Imported) -> None:
    """Every tensor must land on a parameter or buffer of the same shape; a full file fills all.

    Raises:
        SegKdError: naming the first few keys that do not fit.
    """
    from seg_kd_train.models import build_model

    model = build_model(imported.model_name, num_classes=imported.num_classes,
                        **imported.model_kwargs)
    own = model.state_dict()
    state = imported.state
    what = f'{imported.model_name} ({imported.num_classes} classes)'
    theirs = imported.origin.get
    unknown = sorted(theirs(k, k) for k in state if k not in own)
    if unknown:
        raise SegKdError(f'{plural(len(unknown), "key")} of the checkpoint not in {what}: '
                         f'{_names(unknown)}')
    misfit = sorted(f'{theirs(k, k)} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
                    for k in state if state[k].shape != own[k].shape)
    if misfit:
        raise SegKdError(f'{plural(len(misfit), "tensor")} with other shapes than in {what}: '
                         f'{_names(misfit)}')
    if imported.contents == 'full':
        missing = sorted(k for k in own if k not in state)
        if missing:
            raise SegKdError(f'the checkpoint lacks {plural(len(missing), "tensor")} of {what}: '
                             f'{_names(missing)}')
    elif not any(k.startswith('layer1.') for k in state):
        raise SegKdError(f'the checkpoint holds no backbone layer of {what}')
    # the file's dtype (e.g. half) and layout: those of the model
    imported.state = {k: v.to(own[k].dtype).contiguous() for k, v in state.items()}


def import_checkpoint(path: str | Path, out: str | Path, source: str | None = None,
                      model: str | None = None, classes: str = 'cityscapes') -> Imported:
    """Read the authors' checkpoint at `path` and write it as this project's weights at `out`.

    Args:
        path: the authors' `.pt` / `.pth` / `.pth.tar`.
        out: the `.safetensors` file to write.
        source: `pidnet` or `swiftnet` (None: from the keys).
        model: the registry name expected (None: from the keys and shapes).
        classes: `cityscapes` or a classes YAML file (names and palette, index = trainId).

    Raises:
        SegKdError: one line naming what is wrong.
    """
    from seg_kd_train.models.weights import save_state_dict

    out = Path(out)
    if out.suffix != '.safetensors':
        raise SegKdError(f'--out must end in .safetensors, got {out}')
    names, palette = _classes(classes)
    imported = convert(read_checkpoint(path), source, model, len(names))
    if imported.num_classes != len(names):
        raise SegKdError(f'{path} classifies {imported.num_classes} classes; {classes} names '
                         f'{len(names)}')
    kind = {'full': 'trained model', 'backbone': 'ImageNet backbone'}[imported.contents]
    extra = {'source': f'{Path(path).name} ({REPOS[imported.source]}, {kind})',
             'contents': imported.contents, 'classes': names, 'palette': palette,
             'normalisation': imported.normalisation}
    save_state_dict(out, imported.state, imported.model_name, imported.num_classes,
                    imported.model_kwargs, extra)
    return imported


def _classes(classes: str) -> tuple[list[str], list[list[int]]]:
    from seg_kd_ros.model_metadata import MetadataError, load_classes_file
    from seg_kd_train.data.cityscapes_labels import shipped_classes_file

    path = shipped_classes_file() if classes == 'cityscapes' else Path(classes)
    try:
        names, palette = load_classes_file(path)
    except MetadataError as exc:
        raise SegKdError(f'--classes: {exc}') from None
    return list(names), [list(map(int, c)) for c in palette]
