"""Cross-entropy losses for dense prediction: plain and online hard example mining (OHEM)."""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from seg_kd_ros.postprocess import IGNORE_INDEX


def match_size(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize `logits` [N, C, h, w] bilinearly to `size` (h, w) if they differ."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode='bilinear', align_corners=False)
    return logits


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy, mean over the pixels whose label is not `ignore_index`.

    L = -(1/|V|) sum_{p in V} log softmax(z_p)[y_p], V = {p : y_p != ignore_index}.
    Returns 0 (with a graph) when no pixel is valid, where `torch.nn.CrossEntropyLoss` gives NaN.

    Shape:
        - logits: [N, C, H, W] (resized bilinearly to the label size if smaller)
        - labels: [N, H, W] int64
        - output: scalar
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the mean cross-entropy over valid pixels."""
        logits = match_size(logits, labels.shape[-2:])
        if not bool((labels != self.ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index)


class OhemCrossEntropyLoss(nn.Module):
    """Cross-entropy over the hard pixels only (OHEM, as in PIDNet's `utils/criterion.py`).

    With q_p the softmax probability of the ground-truth class at valid pixel p, sorted ascending
    (q_(0) <= q_(1) <= ...), the threshold is t = max(q_(min(min_kept, n - 1)), thresh) and
    L = mean over {p in V : q_p < t} of -log q_p. Easy pixels (q_p >= t) do not contribute, but at
    least `min_kept` pixels are kept when that many are valid.
    Source: Shrivastava et al. 2016 (OHEM); PIDNet (Xu et al. CVPR 2023) `OhemCrossEntropy`.

    Shape:
        - logits: [N, C, H, W]
        - labels: [N, H, W] int64
        - output: scalar
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, thresh: float = 0.9,
                 min_kept: int = 131072):
        super().__init__()
        self.ignore_index = ignore_index
        self.thresh = thresh
        self.min_kept = max(1, int(min_kept))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the mean cross-entropy over the hard valid pixels."""
        logits = match_size(logits, labels.shape[-2:]).float()
        valid = labels != self.ignore_index
        if not bool(valid.any()):
            return logits.sum() * 0.0
        pixel_loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index,
                                     reduction='none')[valid]
        with torch.no_grad():
            safe = labels.clone()
            safe[~valid] = 0
            prob = logits.softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)[valid]
            sorted_prob, _ = prob.sort()
            threshold = max(float(sorted_prob[min(self.min_kept, prob.numel() - 1)]), self.thresh)
            keep = prob < threshold
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return pixel_loss[keep].mean()
