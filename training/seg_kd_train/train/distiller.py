"""Training tasks: a student with its supervised loss, and a distiller that adds a frozen teacher.

The task is the module the trainer optimises (and wraps in DDP): `forward(images, labels)` returns
the total loss and its named terms. `task.student` is the network that is saved and exported;
the distiller's adapters are trained with it but live beside it, never inside its weights.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.config import DistillTerm, LossConfig, Recipe
from seg_kd_train.errors import SegKdError
from seg_kd_train.losses import (
    Adapter,
    BorderFocalLoss,
    ChannelWiseDivergence,
    CrossEntropyLoss,
    L2FeatureLoss,
    LADLoss,
    OhemCrossEntropyLoss,
    PidnetLoss,
    PixelKLDivLoss,
)

LOGITS = 'logits'


def build_criterion(cfg: LossConfig) -> Callable[[dict, torch.Tensor], dict[str, torch.Tensor]]:
    """The supervised loss of a recipe as a callable (forward_train output, labels) -> terms."""
    if cfg.name == 'pidnet':
        pid = PidnetLoss(cfg.ignore_index, ohem_thresh=cfg.ohem_thresh,
                         ohem_min_kept=cfg.ohem_min_kept)
        return lambda out, labels: {k: cfg.weight * v
                                    for k, v in pid(out['logits'], out['aux'], labels).items()}
    if cfg.name == 'border':
        loss = BorderFocalLoss(cfg.ignore_index, cfg.border_bins, cfg.border_alphas,
                               cfg.focal_gamma)
    elif cfg.name == 'ohem':
        loss = OhemCrossEntropyLoss(cfg.ignore_index, cfg.ohem_thresh, cfg.ohem_min_kept)
    else:
        loss = CrossEntropyLoss(cfg.ignore_index)
    return lambda out, labels: {cfg.name: cfg.weight * loss(out['logits'], labels)}


class SegmentationTask(nn.Module):
    """A network trained on ground truth alone (a teacher or a plain student)."""

    def __init__(self, student: nn.Module, loss: LossConfig):
        super().__init__()
        self.student = student
        self.criterion = build_criterion(loss)

    def forward(self, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its terms (detached)."""
        out = self.student.forward_train(images)
        terms = self.criterion(out, labels)
        return self._total(terms)

    @staticmethod
    def _total(terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}


class TorchTeacher:
    """A frozen PyTorch teacher: eval mode, no gradients, optionally fp16 on CUDA.

    It runs under `torch.no_grad`, not `torch.inference_mode`: inference tensors cannot be saved
    for backward, so every loss that keeps its target (`F.mse_loss` does) would fail on them, and
    inference mode measured no faster than no_grad for a ResNet-18 SwiftNet teacher on CPU.
    """

    def __init__(self, model: nn.Module, num_classes: int, device: torch.device,
                 half: bool = False):
        self.half = bool(half and device.type == 'cuda')
        self.model = model.to(device).eval()
        if self.half:
            self.model.half()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.taps = {name: info.channels for name, info in getattr(model, 'taps', {}).items()}
        self.num_classes = num_classes

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict:
        """Logits and taps of the teacher, float32, without a graph."""
        self.model.eval()
        x = images.half() if self.half else images
        out = self.model.forward_train(x)
        return {LOGITS: out['logits'].float(),
                'taps': {k: v.float() for k, v in out.get('taps', {}).items()}}


class OnnxTeacher:
    """A teacher run by ONNX Runtime; logits only (an ONNX carries no feature taps).

    The ONNX must have an output named `logits` [N, C, H, W]. A deploy export (outputs `labels`
    and `confidence` only, docs/model_file.md) cannot teach: it has no logits.
    """

    def __init__(self, path: str | Path, device: str = 'cpu'):
        # the runtime's session loader: the node's providers, device checks and one-line errors
        from seg_kd_ros.backends import ModelLoadError
        from seg_kd_ros.backends.onnxruntime_backend import open_session

        self.path = Path(path)
        try:
            self.session = open_session(self.path, device)
        except ModelLoadError as exc:
            raise SegKdError(f'teacher {exc}') from None
        outputs = [o.name for o in self.session.get_outputs()]
        if LOGITS not in outputs:
            raise SegKdError(f'teacher {self.path}: an ONNX teacher needs an output named '
                             f'`logits`; it has {outputs} (a deploy export has no logits; use '
                             'the weights)')
        self.input_name = self.session.get_inputs()[0].name
        self.taps: dict[str, int] = {}
        self.num_classes = int(self.session.get_outputs()[outputs.index(LOGITS)].shape[1])

    def __call__(self, images: torch.Tensor) -> dict:
        """Logits from ONNX Runtime as a float32 tensor on the images' device."""
        array = images.detach().float().cpu().numpy()
        logits = self.session.run([LOGITS], {self.input_name: np.ascontiguousarray(array)})[0]
        return {LOGITS: torch.from_numpy(logits).to(images.device), 'taps': {}}


def load_teacher(path: str | Path, device: torch.device, half: bool = False):
    """Open a teacher from a weights file (`.safetensors`) or an ONNX with a logits output."""
    path = Path(path)
    if not path.is_file():
        raise SegKdError(f'teacher {path}: no such file (set --teacher or teacher.weights)')
    if path.suffix == '.onnx':
        return OnnxTeacher(path, 'cuda' if device.type == 'cuda' else 'cpu')
    from seg_kd_train.models.weights import load_model_weights, read_weights_metadata

    num_classes = read_weights_metadata(path)['num_classes']
    return TorchTeacher(load_model_weights(path), num_classes, device, half)


def _tap_channels(owner: str, taps: dict[str, int], num_classes: int, name: str,
                  term: str) -> int:
    if name == LOGITS:
        return num_classes
    if name not in taps:
        raise ValueError(f'distill term `{term}`: the {owner} has no tap `{name}`; its taps are '
                         f'{[LOGITS] + sorted(taps)}')
    return taps[name]


def build_term_loss(term: DistillTerm, ignore_index: int) -> nn.Module:
    """The loss module of one distillation term."""
    if term.type == 'kl':
        return PixelKLDivLoss(term.temperature, ignore_index)
    if term.type == 'cwd':
        return ChannelWiseDivergence(term.temperature)
    if term.type == 'lad':
        return LADLoss()
    return L2FeatureLoss()


class Distiller(SegmentationTask):
    """Student + supervised loss + weighted distillation terms from a frozen teacher.

    Taps are matched by the names in the recipe (`student`/`teacher` of each term; `logits` means
    the output logits). Adapters (1x1 conv, optional BN, then resize to the teacher's size) are
    created where the recipe asks or where channels differ, and train with the student. The teacher
    is held outside the module tree: it is not in `parameters()`, `state_dict()` or DDP. Per step
    the teacher runs once, and each tensor that needs resizing is resized once (`pairs`).
    """

    def __init__(self, student: nn.Module, teacher, loss: LossConfig, terms: list[DistillTerm],
                 num_classes: int):
        super().__init__(student, loss)
        if not terms:
            raise ValueError('a distiller needs at least one distillation term')
        object.__setattr__(self, 'teacher', teacher)
        s_taps = {k: v.channels for k, v in getattr(student, 'taps', {}).items()}
        s_classes = num_classes
        if teacher.num_classes != s_classes:
            raise ValueError(f'teacher has {teacher.num_classes} classes, student {s_classes}')
        self.terms: list[tuple[str, DistillTerm]] = []
        self.adapters = nn.ModuleDict()
        self.losses = nn.ModuleDict()
        for term in terms:
            name = term.name or f'{term.type}_{term.student}'
            if name in self.losses:
                raise ValueError(f'two distill terms are named `{name}`; set `name` on one')
            c_s = _tap_channels('student', s_taps, s_classes, term.student, name)
            c_t = _tap_channels('teacher', teacher.taps, teacher.num_classes, term.teacher, name)
            mode = term.adapter
            if mode == 'auto':
                mode = 'conv' if c_s != c_t else 'none'
            if mode == 'none' and c_s != c_t:
                raise ValueError(f'distill term `{name}`: adapter none but channels differ '
                                 f'({c_s} student, {c_t} teacher)')
            if mode != 'none':
                self.adapters[name] = Adapter(c_s, c_t, batch_norm=mode == 'conv_bn')
            self.losses[name] = build_term_loss(term, loss.ignore_index)
            self.terms.append((name, term))

    def forward(self, images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its terms (supervised + weighted distillation)."""
        # the teacher first: its activations come and go before the student's graph exists
        t_out = self.teacher_outputs(images)
        out = self.student.forward_train(images)
        terms = self.criterion(out, labels)
        for name, term, s, t in self.pairs(out, t_out):
            if term.type == 'kl':
                value = self.losses[name](s, t, labels)
            else:
                value = self.losses[name](s, t)
            terms[name] = term.weight * value
        return self._total(terms)

    def teacher_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher's tensors that the terms read (`logits` or a tap name -> tensor)."""
        with torch.no_grad():
            t_out = self.teacher(images)
            return {k: t_out[LOGITS] if k == LOGITS else t_out['taps'][k]
                    for k in {term.teacher for _, term in self.terms}}

    def pairs(self, out: dict, t_out: dict) -> list[tuple[str, DistillTerm, torch.Tensor,
                                                          torch.Tensor]]:
        """(name, term, student tensor, teacher tensor) of each term, at the sizes its loss uses.

        A term with an adapter gets the adapted student at the teacher's size. Without one, KL
        compares at the student's size (the teacher resized) and the feature losses at the
        teacher's (the student resized), as the losses themselves would; each tensor is resized
        once per step however many terms read it, and the teacher's never enter the graph.
        """
        resized: dict[tuple, torch.Tensor] = {}

        def once(key: tuple, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
            if tuple(x.shape[-2:]) == size:
                return x
            if (key, size) not in resized:
                resized[key, size] = F.interpolate(x.float(), size=size, mode='bilinear',
                                                   align_corners=False)
            return resized[key, size]

        result = []
        for name, term in self.terms:
            s = out[LOGITS] if term.student == LOGITS else out['taps'][term.student]
            t = t_out[term.teacher]
            if name in self.adapters:
                s = self.adapters[name](s, size=tuple(t.shape[-2:]))
            elif term.type == 'kl':
                t = once(('teacher', term.teacher), t, tuple(s.shape[-2:]))
            else:
                s = once(('student', term.student), s, tuple(t.shape[-2:]))
            result.append((name, term, s, t))
        return result


def build_task(recipe: Recipe, student: nn.Module, device: torch.device) -> SegmentationTask:
    """The task of a recipe: a distiller when it has distill terms, else a plain task."""
    if not recipe.distill:
        return SegmentationTask(student, recipe.loss)
    teacher = load_teacher(recipe.teacher.weights, device, recipe.teacher.half)
    return Distiller(student, teacher, recipe.loss, recipe.distill, recipe.model.num_classes)
