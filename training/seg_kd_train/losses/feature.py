"""Feature distillation losses: L2 / FitNets, LAD (layer-normalised L2) and channel-wise (CWD).

Every loss takes the student's feature already mapped by an adapter to the teacher's channels
(see `seg_kd_train.losses.adapters`); spatial sizes are matched by bilinear resizing of the student
feature to the teacher's. Teacher tensors are detached. Labels do not enter feature losses: a
feature pixel is not a labelled pixel, so `ignore_index` has no role here.
"""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_train.losses.kd import softmax_kl


def _align(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if student.shape[1] != teacher.shape[1]:
        raise ValueError(f'feature loss: student has {student.shape[1]} channels, teacher '
                         f'{teacher.shape[1]}; add an adapter')
    teacher = teacher.detach().float()
    student = student.float()
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, size=teacher.shape[-2:], mode='bilinear',
                                align_corners=False)
    return student, teacher


class L2FeatureLoss(nn.Module):
    """FitNets hint loss: L = mean over (N, C, H, W) of (A(F_s) - F_t)^2.

    Source: Romero et al. 2015 (FitNets); CIRKD `losses/fitnet.py`.

    Shape:
        - student: [N, C, h, w] (after the adapter), teacher: [N, C, H, W]
        - output: scalar
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Return the mean squared error."""
        student, teacher = _align(student, teacher)
        return F.mse_loss(student, teacher)


class LADLoss(nn.Module):
    """Layer-normalised feature distillation (LAD): keep the direction, drop the magnitude.

    L = mean over (N, C, H, W) of (LN(A(F_s)) - LN(F_t))^2, LN a layer normalisation without
    affine parameters over (C, H, W) of each sample (zero mean, unit variance per sample). The mean
    over elements equals (1 / (N C H W)) * sum_n ||LN(.)_n - LN(.)_n||^2.
    Source: "Rethinking Knowledge Distillation with Raw Features for Semantic Segmentation"
    (OpenReview HwbEioBGLo3); no official code was found, this is our reading of it.
    """

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Return the mean squared error between layer-normalised features."""
        student, teacher = _align(student, teacher)
        shape = student.shape[1:]
        return F.mse_loss(F.layer_norm(student, shape, eps=self.eps),
                          F.layer_norm(teacher, shape, eps=self.eps))


class ChannelWiseDivergence(nn.Module):
    """Channel-wise distillation (CWD, Shu et al. ICCV 2021).

    Each channel becomes a distribution over the H*W positions:
    phi(y)_{n,c,i} = exp(y_{n,c,i} / tau) / sum_j exp(y_{n,c,j} / tau), and
    L = tau^2 / (N * C) * sum_n sum_c sum_i phi(y_t)_{n,c,i} (log phi(y_t)_{n,c,i}
    - log phi(y_s)_{n,c,i}). Works on logits (C = classes) or on adapted features.
    Source: TorchDistiller `SemSeg-distill/utils/criterion.py` CriterionCWD;
    mmrazor `losses/cwd.py`.

    Shape:
        - student: [N, C, h, w], teacher: [N, C, H, W]
        - output: scalar
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'CWD temperature must be > 0, got {temperature}')
        self.temperature = temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Return the channel-wise KL divergence."""
        student, teacher = _align(student, teacher)
        n, c = student.shape[:2]
        tau = self.temperature
        kl = softmax_kl(student.reshape(n, c, -1), teacher.reshape(n, c, -1), tau, 2)
        return tau * tau * kl.sum() / (n * c)
