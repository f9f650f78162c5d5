"""The bag-eval report folder: summary.md, summary.json and PNG plots drawn with matplotlib.

Files: `summary.json` (every figure, NaN written as null), `summary.md` (the tables a person
reads), `per_class_iou.png`, `latency.png` (histogram and timeline), `reliability.png` (reliability
diagram with ECE), `overlays.png` (input / ground truth / prediction for a few frames spread over
the bag) and, when asked, `overlays.mp4` (written while playing, by `OverlayVideo`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def palette_lut(palette: list) -> np.ndarray:
    """A 256 x 3 uint8 lookup table from a class palette; unknown ids and 255 are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(palette)] = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
    return lut


def overlay(rgb: np.ndarray, labels: np.ndarray, lut: np.ndarray,
            alpha: float = 0.6) -> np.ndarray:
    """The palette colours of `labels` blended over `rgb` (pixels labelled 255 stay unblended)."""
    colour = lut[labels]
    out = cv2.addWeighted(rgb, 1.0 - alpha, colour, alpha, 0.0)
    out[labels == 255] = rgb[labels == 255]
    return out


def _clean(value):
    """JSON-safe copy: NaN / inf -> None, numpy scalars and arrays -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _pct(value) -> str:
    return '-' if value is None or not math.isfinite(value) else f'{100 * value:.1f}'


def _num(value, fmt: str = '.1f') -> str:
    return '-' if value is None or not math.isfinite(value) else format(value, fmt)


def write_markdown(path: Path, summary: dict) -> None:
    """Write the human-readable summary."""
    f, lat = summary['frames'], summary['latency_ms']
    lines = [f"# bag-eval: {summary['bag']}", '',
             f"Image topic `{summary['image_topic']}` ({summary['image_type']}) -> node input "
             f"`{summary['input_topic']}`; rate {summary['rate']}; outputs "
             f"`{summary['labels_topic']}`, `{summary['confidence_topic'] or '-'}`.", '',
             '| frames in bag | malformed (skipped) | sent | answered | dropped | '
             'without confidence |', '|---|---|---|---|---|---|',
             f"| {f['in_bag']} | {f['malformed']} | {f['sent']} | {f['answered']} | "
             f"{f['dropped']} | {f['confidence_missing']} |", '',
             '| latency median (ms) | p95 (ms) | p99 (ms) | max (ms) | throughput (frames/s) |',
             '|---|---|---|---|---|',
             f"| {_num(lat['median'])} | {_num(lat['p95'])} | {_num(lat['p99'])} | "
             f"{_num(lat['max'])} | {_num(summary['throughput_fps'], '.2f')} |", '',
             'Latency: receive time of the last output of a frame minus its send time '
             '(one clock, this process).', '']
    if summary.get('read_error'):
        lines += [f"**Bag damaged:** {summary['read_error']}", '']
    if summary.get('malformed_reasons'):
        lines += ['Skipped frames (first reasons):', '']
        lines += [f'- {r}' for r in summary['malformed_reasons']] + ['']
    metrics = summary.get('metrics')
    if metrics:
        conds = list(metrics)
        lines += ['| metric | ' + ' | '.join(conds) + ' |', '|---' * (len(conds) + 1) + '|',
                  '| mIoU (%) | ' + ' | '.join(_pct(metrics[c]['miou']) for c in conds) + ' |',
                  '| pixel acc. (%) | ' + ' | '.join(_pct(metrics[c]['pixel_accuracy'])
                                                    for c in conds) + ' |',
                  '| ECE | ' + ' | '.join(_num(metrics[c]['ece'], '.4f') for c in conds) + ' |',
                  '', '| class | IoU full (%) |', '|---|---|']
        lines += [f'| {name} | {_pct(v)} |' for name, v in metrics['full']['iou'].items()]
    else:
        lines += ['No ground truth in the bag: latency, drops and overlays only.']
    lines += ['', 'Files: ' + ', '.join(f'`{n}`' for n in summary['files'])]
    path.write_text('\n'.join(lines) + '\n')


def plot_iou(path: Path, iou: dict) -> None:
    """Horizontal bars of the per-class IoU (absent classes shown as 'n/a')."""
    names = list(iou)
    values = [0.0 if v is None or not math.isfinite(v) else 100 * v for v in iou.values()]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(names, values, color='tab:blue')
    for i, v in enumerate(iou.values()):
        text = 'n/a' if v is None or not math.isfinite(v) else f'{100 * v:.1f}'
        ax.text(values[i] + 1, i, text, va='center', fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel('IoU (%)')
    ax.set_title('Per-class IoU (all conditions)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_latency(path: Path, sent_s: list[float], latency_ms: list[float]) -> None:
    """Latency histogram (with median/p95/p99 lines) and latency over the run."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    lat = np.asarray(latency_ms)
    ax1.hist(lat, bins=min(50, max(5, len(lat) // 3)), color='tab:green')
    for q, style in ((50, '-'), (95, '--'), (99, ':')):
        v = np.percentile(lat, q)
        ax1.axvline(v, color='k', linestyle=style, label=f'p{q} {v:.1f} ms')
    ax1.set_xlabel('latency (ms)')
    ax1.set_ylabel('frames')
    ax1.legend(fontsize=8)
    ax1.set_title('Latency histogram')
    ax2.plot(sent_s, lat, '.-', markersize=3, linewidth=0.6)
    ax2.set_xlabel('send time since first frame (s)')
    ax2.set_ylabel('latency (ms)')
    ax2.set_title('Latency over the run')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(path: Path, reliability: dict, ece: float) -> None:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with pixel counts."""
    edges = reliability['bin_edges']
    centers = (edges[:-1] + edges[1:]) / 2
    acc = np.nan_to_num(reliability['accuracy'], nan=0.0)
    conf = reliability['confidence']
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=(3, 1), sharex=True)
    ax1.bar(centers, acc, width=edges[1] - edges[0], edgecolor='k', label='accuracy')
    ax1.plot([0, 1], [0, 1], 'k--', label='perfect calibration')
    ax1.plot(conf, reliability['accuracy'], 'ro', markersize=3,
             label='bin: (mean confidence, accuracy)')
    ax1.set_ylabel('accuracy')
    ax1.set_title(f'Reliability diagram (ECE {ece:.4f})')
    ax1.legend(fontsize=8)
    ax2.bar(centers, reliability['count'], width=edges[1] - edges[0], color='grey')
    ax2.set_yscale('log')
    ax2.set_xlabel('confidence')
    ax2.set_ylabel('pixels')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_overlays(path: Path, samples: list[dict], lut: np.ndarray) -> None:
    """A grid, one row per sample: input, ground truth (if any), prediction overlay."""
    with_gt = any(s['gt'] is not None for s in samples)
    cols = 3 if with_gt else 2
    h, w = samples[0]['rgb'].shape[:2]
    fig, axes = plt.subplots(len(samples), cols, squeeze=False,
                             figsize=(3.2 * cols, 3.2 * h / w * len(samples) + 0.4))
    for row, s in enumerate(samples):
        panels = [(s['rgb'], f"#{s['index']} {s['condition']}")]
        if with_gt:
            gt = s['gt'] if s['gt'] is not None else np.full((h, w), 255, np.uint8)
            panels.append((lut[gt], 'ground truth'))
        panels.append((overlay(s['rgb'], s['pred'], lut),
                       f"prediction ({s['latency_ms']:.0f} ms)"))
        for col, (img, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class OverlayVideo:
    """MP4 (mp4v) of the prediction overlays, one video frame per answered frame."""

    def __init__(self, path: Path, fps: float, lut: np.ndarray, max_width: int = 960) -> None:
        self.path, self.fps, self.lut, self.max_width = path, fps, lut, max_width
        self.writer = None
        self.size = None

    def add(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Append the overlay of one frame (resized to the first frame's size)."""
        img = overlay(rgb, labels, self.lut)
        if self.writer is None:
            h, w = img.shape[:2]
            scale = min(1.0, self.max_width / w)
            self.size = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*'mp4v'),
                                          self.fps, self.size)
            if not self.writer.isOpened():
                raise RuntimeError(f'{self.path}: OpenCV cannot write mp4v video here')
        if img.shape[1::-1] != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish the file."""
        if self.writer is not None:
            self.writer.release()


def write_report(out: Path, summary: dict, reliability: dict | None, sent_s: list[float],
                 latency_ms: list[float], samples: list[dict], lut: np.ndarray) -> None:
    """Write summary.json, summary.md and the plots into `out` (which exists)."""
    files = list(summary.get('files', []))
    if latency_ms:
        plot_latency(out / 'latency.png', sent_s, latency_ms)
        files.append('latency.png')
    if samples:
        plot_overlays(out / 'overlays.png', samples, lut)
        files.append('overlays.png')
    metrics = summary.get('metrics')
    if metrics:
        plot_iou(out / 'per_class_iou.png', metrics['full']['iou'])
        files.append('per_class_iou.png')
        if reliability is not None and reliability['count'].sum() > 0:
            plot_reliability(out / 'reliability.png', reliability, metrics['full']['ece'])
            files.append('reliability.png')
    summary['files'] = ['summary.md', 'summary.json'] + files
    (out / 'summary.json').write_text(json.dumps(_clean(summary), indent=2) + '\n')
    write_markdown(out / 'summary.md', _clean(summary))
