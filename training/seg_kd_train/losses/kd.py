"""Logit knowledge distillation: pixel-wise KL divergence with a temperature.

`softmax_kl` is the one KL-between-softmaxes of the package (this loss along the classes, CWD in
`seg_kd_train.losses.feature` along the positions).
"""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_ros.postprocess import IGNORE_INDEX


def _scaled(x: torch.Tensor, temperature: float) -> torch.Tensor:
    # x / 1.0 == x exactly: skipping it saves a full-size tensor and changes no value
    return x if temperature == 1.0 else x / temperature


class _SoftmaxKL(torch.autograd.Function):
    """Elementwise p_t (log p_t - log p_s) along `dim`, differentiable in the student only.

    The same operations as autograd would run forward (same values), but a backward written out:
    d/dz_j of sum_i g_i e_i = p_s,j sum_i g_i p_t,i - g_j p_t,j (z = student / T). Autograd's chain
    (div, log_softmax, sub, mul) keeps three full-size tensors from forward and makes four in
    backward; this keeps two (log p_s, p_t) and makes two: on CPU a fresh full-size tensor costs
    about as much as the arithmetic done on it.
    """

    @staticmethod
    def forward(ctx, student: torch.Tensor, teacher: torch.Tensor, temperature: float,
                dim: int) -> torch.Tensor:
        log_p_t = F.log_softmax(_scaled(teacher, temperature), dim)
        p_t = log_p_t.exp()
        log_p_s = F.log_softmax(_scaled(student, temperature), dim)
        out = log_p_t.sub_(log_p_s)
        out.mul_(p_t)
        ctx.save_for_backward(log_p_s, p_t)
        ctx.temperature, ctx.dim = temperature, dim
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        log_p_s, p_t = ctx.saved_tensors
        g_p_t = grad * p_t
        grad_s = log_p_s.exp()
        grad_s.mul_(g_p_t.sum(ctx.dim, keepdim=True)).sub_(g_p_t)
        if ctx.temperature != 1.0:
            grad_s.div_(ctx.temperature)
        return grad_s, None, None, None


def softmax_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
               dim: int) -> torch.Tensor:
    """Elementwise terms of KL(softmax(teacher / T) || softmax(student / T)) along `dim`.

    Summing the result along `dim` gives the KL divergence of each distribution. The teacher is a
    constant: no gradient reaches it and it is never saved for backward (an inference-mode
    tensor is fine).

    Shape:
        - student, teacher: the same shape, float
        - output: that shape
    """
    return _SoftmaxKL.apply(student, teacher.detach(), temperature, dim)


class PixelKLDivLoss(nn.Module):
    """Hinton's KD applied at every pixel.

    L = T^2 * (1/|V|) * sum_{p in V} sum_c p^t_{p,c} (log p^t_{p,c} - log p^s_{p,c}),
    p^t = softmax(z_t / T), p^s = softmax(z_s / T) over the classes, V the pixels whose label is
    not `ignore_index` (all pixels when no labels are given). Normalisation: a mean over valid
    pixels (as CIRKD's `losses/kd.py`, which averages over all B*H*W pixels), not torchdistill's
    `batchmean` (which sums over pixels). The teacher is detached. Source: Hinton et al. 2015.

    Shape:
        - student, teacher: [N, C, H, W] logits (the teacher's are resized to the student's size)
        - labels (optional): [N, H', W'] int64 (nearest-resized to the logits' size if different)
        - output: scalar
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'KL temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.ignore_index = ignore_index

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the temperature-scaled mean KL(teacher || student) over valid pixels."""
        t = self.temperature
        teacher = teacher.detach().float()
        student = student.float()
        if teacher.shape[-2:] != student.shape[-2:]:
            teacher = F.interpolate(teacher, size=student.shape[-2:], mode='bilinear',
                                    align_corners=False)
        kl = softmax_kl(student, teacher, t, 1).sum(1)  # [N, H, W]
        if labels is None:
            return kl.mean() * t * t
        if labels.shape[-2:] != kl.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), size=kl.shape[-2:],
                                   mode='nearest')[:, 0].long()
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return student.sum() * 0.0
        return kl[valid].mean() * t * t
