"""SwiftNet's boundary-aware focal loss ("border" loss) and its distance-bin pixel weights."""

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.losses.ce import match_size

DEFAULT_BINS = (4, 16, 64, 128)
DEFAULT_ALPHAS = (8.0, 6.0, 4.0, 2.0, 1.0)


def border_weights(label: np.ndarray, bins: Sequence[float] = DEFAULT_BINS,
                   alphas: Sequence[float] = DEFAULT_ALPHAS,
                   ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Per-pixel weights that grow towards the border of each pixel's own class region.

    d_p is the Euclidean distance (cv2.distanceTransform, DIST_L2, mask 5) from pixel p to the
    nearest pixel of another label (ignore included; the image frame is not a border). The weight
    is alphas[k] for the bin k = #{b in bins : b <= d_p}, and 0 on ignore pixels.
    Source: Orsic et al. (SwiftNet) `data/transform/border.py`; bins (4, 16, 64, 128) with
    alphas (8, 6, 4, 2, 1) for the single-scale model.

    Args:
        label: uint8 or integer [H, W] trainIds.
        bins: increasing distance thresholds.
        alphas: weights, one more than `bins`.
        ignore_index: label value that gets weight 0.

    Returns:
        float32 [H, W] weights.
    """
    if len(alphas) != len(bins) + 1:
        raise ValueError(f'border loss: {len(alphas)} alphas for {len(bins)} bins; need bins + 1')
    label = np.asarray(label)
    distance = np.zeros(label.shape, np.float32)
    for cls in np.unique(label):
        if cls == ignore_index:
            continue
        mask = label == cls
        distance[mask] = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)[mask]
    weights = np.asarray(alphas, np.float32)[np.digitize(distance, np.asarray(bins, np.float32))]
    weights[label == ignore_index] = 0.0
    return weights


class BorderFocalLoss(nn.Module):
    """Boundary-aware focal loss of SwiftNet (the thesis's "border" loss).

    L = (1 / #{p : a_p > 0}) * sum_p a_p * exp(gamma * (1 - q_p)) * (-log q_p), with q_p the
    softmax probability of the ground-truth class (detached inside the modulating factor exp(...)),
    a_p the distance-bin weight of `border_weights` (0 on ignore pixels), gamma = 0.5.
    Source: Orsic et al. (SwiftNet) `models/loss/boundary_loss.py`.

    Shape:
        - logits: [N, C, H, W]
        - labels: [N, H, W] int64
        - weights (optional): [N, H, W] float, computed from `labels` when not given
        - output: scalar
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, bins: Sequence[float] = DEFAULT_BINS,
                 alphas: Sequence[float] = DEFAULT_ALPHAS, gamma: float = 0.5):
        super().__init__()
        if len(alphas) != len(bins) + 1:
            raise ValueError(f'border loss: {len(alphas)} alphas for {len(bins)} bins')
        self.ignore_index = ignore_index
        self.bins = tuple(bins)
        self.alphas = tuple(alphas)
        self.gamma = gamma

    def weights_for(self, labels: torch.Tensor) -> torch.Tensor:
        """Distance-bin weights for a batch of labels, on the labels' device."""
        arrays = labels.detach().cpu().numpy()
        stacked = np.stack([border_weights(a, self.bins, self.alphas, self.ignore_index)
                            for a in arrays])
        return torch.from_numpy(stacked).to(labels.device)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """Return the weighted focal loss."""
        logits = match_size(logits, labels.shape[-2:]).float()
        if weights is None:
            weights = self.weights_for(labels)
        valid = (labels != self.ignore_index) & (weights > 0)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        log_q = F.log_softmax(logits, 1).gather(1, safe.unsqueeze(1)).squeeze(1)
        modulation = torch.exp(self.gamma * (1.0 - log_q.detach().exp()))
        per_pixel = weights * modulation * (-log_q)
        return per_pixel[valid].sum() / valid.sum()
