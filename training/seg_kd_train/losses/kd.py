"""Logit knowledge distillation: pixel-wise KL divergence with a temperature."""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_ros.postprocess import IGNORE_INDEX


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
        log_p_s = F.log_softmax(student / t, 1)
        log_p_t = F.log_softmax(teacher / t, 1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)  # [N, H, W]
        if labels is None:
            return kl.mean() * t * t
        if labels.shape[-2:] != kl.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), size=kl.shape[-2:],
                                   mode='nearest')[:, 0].long()
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return student.sum() * 0.0
        return kl[valid].mean() * t * t
