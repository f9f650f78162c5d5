"""Temperature scaling (Guo et al., ICML 2017) of the segmentation confidence.

One scalar T divides the logits before the softmax; it changes no argmax, only the confidence.
T is fitted by minimising the negative log-likelihood of the ground truth over valid pixels of a
validation split (a seeded subsample per image keeps it small), with L-BFGS on log T so that T
stays positive. The expected calibration error (15 bins) is reported before and after.
"""

from dataclasses import asdict, dataclass
import math

import numpy as np
import torch
from torch import nn
from torch.nn.functional import cross_entropy

from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.evaluation.metrics import CalibrationBins


@dataclass
class CalibrationResult:
    """Outcome of a temperature fit."""

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    pixels: int
    images: int

    def __str__(self) -> str:
        return (f'temperature {self.temperature:.4f} fitted on {self.pixels} pixels of '
                f'{self.images} images: NLL {self.nll_before:.4f} -> {self.nll_after:.4f}, '
                f'ECE {self.ece_before:.4f} -> {self.ece_after:.4f}')

    def as_dict(self) -> dict:
        """Plain dict for JSON and the model metadata."""
        return asdict(self)


@torch.no_grad()
def collect_logits(model: nn.Module, batches, num_classes: int, ignore_index: int = IGNORE_INDEX,
                   pixels_per_image: int = 20000, seed: int = 0,
                   device: str = 'cpu') -> tuple[torch.Tensor, torch.Tensor, int]:
    """Run the model and keep the logits of a random subset of valid pixels of every image.

    Args:
        model: network with `forward(x) -> logits [N, C, H, W]` (e.g. `Normalise` followed by
            the network, for the uint8 frames of `samples.network_batches`).
        batches: iterable of `(images [N, ...] as the model takes them, labels [N, H, W])`
            (numpy or torch).
        num_classes: C; labels >= C other than `ignore_index` are treated as ignored too.
        ignore_index: label value of unlabelled pixels.
        pixels_per_image: at most this many valid pixels kept per image.
        seed: seed of the pixel subsample.
        device: where the model runs.

    Returns:
        `(logits float32 [P, C], labels int64 [P], number of images)`, on the CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    model = model.eval().to(device)
    kept_logits, kept_labels, images = [], [], 0
    for batch_images, batch_labels in batches:
        x = torch.as_tensor(np.asarray(batch_images), device=device)
        logits = model(x).float().cpu()
        labels = torch.as_tensor(np.asarray(batch_labels)).long()
        for lg, lb in zip(logits, labels, strict=True):
            images += 1
            valid = ((lb != ignore_index) & (lb >= 0) & (lb < num_classes)).flatten()
            idx = valid.nonzero().squeeze(1)
            if idx.numel() > pixels_per_image:
                idx = idx[torch.randperm(idx.numel(), generator=generator)[:pixels_per_image]]
            kept_logits.append(lg.flatten(1)[:, idx].T.contiguous())
            kept_labels.append(lb.flatten()[idx])
    if not kept_logits or sum(t.shape[0] for t in kept_logits) == 0:
        raise ValueError('no labelled pixel found to fit the temperature on (all ignore_index?)')
    return torch.cat(kept_logits), torch.cat(kept_labels), images


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """Mean negative log-likelihood of `labels` under `softmax(logits / temperature)`."""
    return float(cross_entropy(logits / temperature, labels))


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                               n_bins: int = 15, chunk: int = 1 << 20) -> float:
    """ECE of the max-softmax confidence of `logits / temperature` (`CalibrationBins`)."""
    bins = CalibrationBins(n_bins=n_bins)
    for start in range(0, logits.shape[0], chunk):
        lg = logits[start:start + chunk]
        confidence, pred = torch.softmax(lg / temperature, dim=1).max(dim=1)
        bins.update(confidence.numpy(), (pred == labels[start:start + chunk]).numpy())
    return float(bins.ece())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, init: float = 1.0,
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Return the T minimising the mean NLL of `labels` under `softmax(logits / T)`.

    Args:
        logits: float `[P, C]`.
        labels: int64 `[P]`.
        init: starting temperature.
        bounds: T is clamped to this range (a T at a bound means the data cannot pin it down).
    """
    logits = logits.detach().float()
    log_t = torch.tensor([math.log(init)], requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, tolerance_grad=1e-7,
                                  tolerance_change=1e-10, line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        raise RuntimeError('temperature fit diverged (non-finite result)')
    return min(max(temperature, bounds[0]), bounds[1])


def calibrate(logits: torch.Tensor, labels: torch.Tensor, images: int,
              n_bins: int = 15) -> CalibrationResult:
    """Fit T on collected logits and measure NLL and ECE before (T = 1) and after."""
    temperature = fit_temperature(logits, labels)
    return CalibrationResult(
        temperature=temperature,
        nll_before=nll(logits, labels, 1.0), nll_after=nll(logits, labels, temperature),
        ece_before=expected_calibration_error(logits, labels, 1.0, n_bins),
        ece_after=expected_calibration_error(logits, labels, temperature, n_bins),
        pixels=int(labels.numel()), images=int(images))
