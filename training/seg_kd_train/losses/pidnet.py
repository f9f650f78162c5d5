"""PIDNet's training losses: weighted boundary BCE, boundary-aware CE and the full criterion."""

import cv2
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.losses.ce import CrossEntropyLoss, OhemCrossEntropyLoss, match_size


def edge_target(label: np.ndarray, frame: int = 6, dilate: int = 4,
                ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Boundary ground truth from a label map, as PIDNet's data loader builds it.

    Canny(label, 0.1, 0.2) marks every label change (any difference in trainId), a `frame`-pixel
    band around the image is zeroed, and the edges are dilated with a `dilate` x `dilate` kernel.
    Source: XuJiacong/PIDNet `datasets/base_dataset.py` (edge_size 4, 6-pixel frame).

    Returns:
        float32 [H, W] with 1 on boundary pixels, 0 elsewhere.
    """
    label = np.ascontiguousarray(label, dtype=np.uint8)
    edge = cv2.Canny(label, 0.1, 0.2)
    if frame > 0:
        edge[:frame, :] = 0
        edge[-frame:, :] = 0
        edge[:, :frame] = 0
        edge[:, -frame:] = 0
    edge = cv2.dilate(edge, np.ones((dilate, dilate), np.uint8), iterations=1)
    return (edge > 50).astype(np.float32)


class BoundaryBCELoss(nn.Module):
    """Class-balanced binary cross-entropy on the boundary head (PIDNet's `BondaryLoss`).

    With E the edge target, P = #{E = 1}, Q = #{E = 0} over the valid pixels of the batch,
    w_p = Q / (P + Q) on edge pixels and P / (P + Q) elsewhere;
    L = coeff * mean_p w_p * BCE(sigmoid(b_p), E_p). Pixels labelled `ignore_index` get w_p = 0
    (PIDNet keeps them; we honour ignore).
    Source: XuJiacong/PIDNet `utils/criterion.py` (coeff_bce = 20).

    Shape:
        - boundary: [N, 1, H, W] logits
        - labels: [N, H, W] int64
        - output: scalar
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, coeff: float = 20.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.coeff = coeff

    def forward(self, boundary: torch.Tensor, labels: torch.Tensor,
                edges: torch.Tensor | None = None) -> torch.Tensor:
        """Return the weighted BCE; `edges` [N, H, W] is computed from `labels` if not given."""
        boundary = match_size(boundary, labels.shape[-2:])[:, 0].float()
        if edges is None:
            edges = torch.from_numpy(np.stack([
                edge_target(a, ignore_index=self.ignore_index)
                for a in labels.detach().cpu().numpy()])).to(labels.device)
        valid = labels != self.ignore_index
        pos = ((edges > 0.5) & valid).sum().float()
        neg = ((edges <= 0.5) & valid).sum().float()
        total = (pos + neg).clamp_min(1.0)
        weight = torch.where(edges > 0.5, neg / total, pos / total) * valid.float()
        loss = F.binary_cross_entropy_with_logits(boundary, edges, weight=weight, reduction='mean')
        return self.coeff * loss


class BoundaryAwareCELoss(nn.Module):
    """OHEM cross-entropy restricted to the pixels the boundary head marks as edges.

    Labels are set to `ignore_index` where sigmoid(b_p) <= threshold (0.8), then OHEM CE is applied
    to the main logits: PIDNet's "boundary-awareness" term (Bag of the loss).
    Source: XuJiacong/PIDNet `models/pidnet.py` FullModel (`loss_sb`).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, threshold: float = 0.8,
                 thresh: float = 0.9, min_kept: int = 131072):
        super().__init__()
        self.ignore_index = ignore_index
        self.threshold = threshold
        self.ohem = OhemCrossEntropyLoss(ignore_index, thresh, min_kept)

    def forward(self, logits: torch.Tensor, boundary: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Return the OHEM CE over pixels predicted to lie on a boundary."""
        boundary = match_size(boundary, labels.shape[-2:])[:, 0].detach()
        masked = torch.where(torch.sigmoid(boundary) > self.threshold, labels,
                             torch.full_like(labels, self.ignore_index))
        return self.ohem(logits, masked)


class PidnetLoss(nn.Module):
    """PIDNet's full criterion: 0.4 CE(P branch) + OHEM(main) + 20 BCE(boundary) + OHEM(boundary).

    Needs `aux['p_logits']` and `aux['boundary']` from `forward_train`; returns the total and the
    terms. Source: XuJiacong/PIDNet `models/pidnet.py` FullModel, `utils/criterion.py`.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, aux_weight: float = 0.4,
                 bce_coeff: float = 20.0, ohem_thresh: float = 0.9, ohem_min_kept: int = 131072):
        super().__init__()
        self.aux_weight = aux_weight
        self.aux_ce = CrossEntropyLoss(ignore_index)
        self.main = OhemCrossEntropyLoss(ignore_index, ohem_thresh, ohem_min_kept)
        self.bce = BoundaryBCELoss(ignore_index, bce_coeff)
        self.bas = BoundaryAwareCELoss(ignore_index, 0.8, ohem_thresh, ohem_min_kept)

    def forward(self, logits: torch.Tensor, aux: dict[str, torch.Tensor],
                labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return a dict with the four terms (already weighted) under their names."""
        for key in ('p_logits', 'boundary'):
            if key not in aux:
                raise KeyError(f'PIDNet loss needs forward_train()["aux"]["{key}"]; the model '
                               f'gives {sorted(aux)}')
        return {
            'aux_ce': self.aux_weight * self.aux_ce(aux['p_logits'], labels),
            'ohem': self.main(logits, labels),
            'boundary_bce': self.bce(aux['boundary'], labels),
            'boundary_ce': self.bas(logits, aux['boundary'], labels),
        }
