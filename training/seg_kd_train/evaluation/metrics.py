"""Streaming segmentation metrics: confusion matrix (IoU, mIoU, pixel accuracy) and ECE.

Nothing per pixel is kept between updates: a confusion matrix and 15 calibration bins are all the
state, so a whole split of 2048x1024 frames is scored in constant memory.

Conventions (official Cityscapes evaluation, docs/thesis.md "Metrics"):
- pixels whose ground truth is `ignore_index` (255) are excluded from every metric;
- IoU per class = TP / (TP + FP + FN) over everything seen; a class absent from both prediction and
  ground truth has IoU NaN and is left out of the mean;
- a predicted value outside [0, num_classes) (e.g. 255 from a confidence threshold) is a miss for
  the ground-truth class but a false positive for no class;
- ECE: 15 equal bins on [0, 1] over valid pixels, ECE = sum_b n_b / N * |acc_b - conf_b|.
"""

from collections.abc import Sequence
import math

import numpy as np

from seg_kd_ros.postprocess import IGNORE_INDEX


def _to_numpy(x) -> np.ndarray:
    """Return a numpy view of a numpy array or a (CPU or GPU) torch tensor."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class ConfusionMatrix:
    """Confusion matrix accumulated with one `np.bincount` per update.

    Args:
        num_classes: number of classes C.
        ignore_index: ground-truth value excluded from counting.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # rows: ground truth; columns: prediction, the last column for predictions outside [0, C)
        self._counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._counts[:] = 0

    def update(self, pred, label) -> None:
        """Count one batch.

        Args:
            pred: predicted class ids, any integer shape (numpy or torch).
            label: ground-truth ids, same shape; `ignore_index` and values >= C are not counted.
        """
        pred = _to_numpy(pred)
        label = _to_numpy(label)
        if pred.shape != label.shape:
            raise ValueError(f'pred shape {pred.shape} != label shape {label.shape}')
        c = self.num_classes
        label = label.reshape(-1)
        pred = pred.reshape(-1)
        valid = (label >= 0) & (label < c) & (label != self.ignore_index)
        if not valid.all():
            label = label[valid]
            pred = pred[valid]
        label = label.astype(np.int64, copy=False)
        pred = pred.astype(np.int64, copy=False)
        pred = np.where((pred >= 0) & (pred < c), pred, c)
        self._counts += np.bincount(label * (c + 1) + pred, minlength=c * (c + 1)).reshape(
            c, c + 1
        )

    def merge(self, other: 'ConfusionMatrix') -> None:
        """Add the counts of another matrix of the same size (e.g. from another process)."""
        if other.num_classes != self.num_classes:
            raise ValueError('cannot merge confusion matrices of different sizes')
        self._counts += other._counts

    @property
    def matrix(self) -> np.ndarray:
        """C x C counts, rows = ground truth, columns = prediction (out-of-range ones left out)."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def total(self) -> int:
        """Number of valid (non-ignored) pixels counted."""
        return int(self._counts.sum())

    def iou(self) -> np.ndarray:
        """Per-class IoU, float64 [C]; NaN for classes absent from both prediction and truth."""
        tp = np.diag(self._counts[:, : self.num_classes]).astype(np.float64)
        fn = self._counts.sum(axis=1) - tp
        fp = self._counts[:, : self.num_classes].sum(axis=0) - tp
        denom = tp + fp + fn
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(denom > 0, tp / denom, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes that are not NaN (NaN if none is)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan

    def pixel_accuracy(self) -> float:
        """Fraction of valid pixels predicted correctly (NaN before any valid pixel)."""
        total = self.total
        tp = np.trace(self._counts[:, : self.num_classes])
        return float(tp / total) if total else math.nan


class CalibrationBins:
    """Reliability bins for the expected calibration error of the max-softmax confidence.

    Args:
        n_bins: number of equal-width bins on [0, 1]; bin b holds b/n <= conf < (b+1)/n
            (1.0 goes in the last bin).
    """

    def __init__(self, n_bins: int = 15):
        if n_bins < 1:
            raise ValueError(f'n_bins must be >= 1, got {n_bins}')
        self.n_bins = n_bins
        self._count = np.zeros(n_bins, dtype=np.int64)
        self._sum_conf = np.zeros(n_bins, dtype=np.float64)
        self._sum_correct = np.zeros(n_bins, dtype=np.int64)

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._count[:] = 0
        self._sum_conf[:] = 0
        self._sum_correct[:] = 0

    def update(self, confidence, correct, valid=None) -> None:
        """Count one batch of pixels.

        Args:
            confidence: max softmax probability in [0, 1] (float), or 0-255 if uint8 (the node's
                mono8 encoding), any shape.
            correct: bool, same shape: prediction == ground truth.
            valid: optional bool mask, same shape; only these pixels are counted.
        """
        conf = _to_numpy(confidence)
        correct = _to_numpy(correct).astype(bool, copy=False)
        if conf.shape != correct.shape:
            raise ValueError(f'confidence shape {conf.shape} != correct shape {correct.shape}')
        if conf.dtype == np.uint8:
            conf = conf.astype(np.float32) / 255.0
        if valid is not None:
            valid = _to_numpy(valid).astype(bool, copy=False)
            conf = conf[valid]
            correct = correct[valid]
        conf = conf.reshape(-1)
        correct = correct.reshape(-1)
        idx = np.clip((conf * self.n_bins).astype(np.int64), 0, self.n_bins - 1)
        self._count += np.bincount(idx, minlength=self.n_bins)
        self._sum_conf += np.bincount(idx, weights=conf.astype(np.float64), minlength=self.n_bins)
        self._sum_correct += np.bincount(idx[correct], minlength=self.n_bins)

    def merge(self, other: 'CalibrationBins') -> None:
        """Add the counts of another set of bins with the same number of bins."""
        if other.n_bins != self.n_bins:
            raise ValueError('cannot merge calibration bins of different sizes')
        self._count += other._count
        self._sum_conf += other._sum_conf
        self._sum_correct += other._sum_correct

    @property
    def total(self) -> int:
        """Number of pixels counted."""
        return int(self._count.sum())

    def ece(self) -> float:
        """Expected calibration error, sum_b n_b/N |acc_b - conf_b| (NaN before any pixel)."""
        n = self.total
        if n == 0:
            return math.nan
        return float(np.abs(self._sum_correct - self._sum_conf).sum() / n)

    def reliability(self) -> dict:
        """Reliability-diagram data.

        Returns:
            dict with `bin_edges` [n_bins + 1], `count` [n_bins], and per bin `accuracy` and
            `confidence` (means over the bin's pixels, NaN for empty bins), as numpy arrays.
        """
        with np.errstate(invalid='ignore', divide='ignore'):
            acc = np.where(self._count > 0, self._sum_correct / self._count, np.nan)
            conf = np.where(self._count > 0, self._sum_conf / self._count, np.nan)
        return {
            'bin_edges': np.linspace(0.0, 1.0, self.n_bins + 1),
            'count': self._count.copy(),
            'accuracy': acc,
            'confidence': conf,
        }


class SegmentationEvaluator:
    """mIoU, per-class IoU, pixel accuracy and ECE per condition and pooled over all ('full').

    Args:
        num_classes: number of classes C.
        class_names: C names for the per-class IoU dict (default: '0', '1', ...).
        ignore_index: ground-truth value left out of every metric.
        n_bins: calibration bins.
    """

    FULL = 'full'

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int = IGNORE_INDEX,
        n_bins: int = 15,
    ):
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f'{len(class_names)} class names for {num_classes} classes')
        self.num_classes = num_classes
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])
        self.ignore_index = ignore_index
        self.n_bins = n_bins
        self.confusion: dict[str, ConfusionMatrix] = {}
        self.calibration: dict[str, CalibrationBins] = {}
        self._get(self.FULL)

    def _get(self, condition: str) -> tuple[ConfusionMatrix, CalibrationBins]:
        if condition not in self.confusion:
            self.confusion[condition] = ConfusionMatrix(self.num_classes, self.ignore_index)
            self.calibration[condition] = CalibrationBins(self.n_bins)
        return self.confusion[condition], self.calibration[condition]

    def update(self, pred, confidence, label, condition: str | Sequence[str] = 'all') -> None:
        """Count a frame or a batch.

        Args:
            pred: predicted ids [H, W] or [N, H, W].
            confidence: max softmax probability, same shape, or None to skip calibration.
            label: ground truth, same shape.
            condition: one condition for everything, or one per sample of a batch.
        """
        pred = _to_numpy(pred)
        label = _to_numpy(label)
        conf = None if confidence is None else _to_numpy(confidence)
        if isinstance(condition, str):
            groups = [(condition, pred, conf, label)]
        else:
            if pred.ndim != 3 or len(condition) != pred.shape[0]:
                raise ValueError(
                    f'{len(condition)} conditions for predictions of shape {pred.shape}'
                )
            groups = [
                (cond, pred[i], None if conf is None else conf[i], label[i])
                for i, cond in enumerate(condition)
            ]
        for cond, p, c, lab in groups:
            if cond == self.FULL:
                raise ValueError(f"'{self.FULL}' is reserved for the pooled result")
            for name in (cond, self.FULL):
                cm, bins = self._get(name)
                cm.update(p, lab)
                if c is not None:
                    valid = (lab != self.ignore_index) & (lab < self.num_classes)
                    bins.update(c, p == lab, valid)

    def summary(self) -> dict:
        """Per condition (sorted, then 'full'): miou, iou by class, pixel_accuracy, ece, pixels.

        IoU of classes absent from both prediction and ground truth is NaN.
        """
        out = {}
        names = sorted(k for k in self.confusion if k != self.FULL) + [self.FULL]
        for name in names:
            cm, bins = self.confusion[name], self.calibration[name]
            out[name] = {
                'miou': cm.miou(),
                'iou': {n: float(v) for n, v in zip(self.class_names, cm.iou(), strict=True)},
                'pixel_accuracy': cm.pixel_accuracy(),
                'ece': bins.ece(),
                'pixels': cm.total,
            }
        return out
