"""Evaluation reports: metric tables in Markdown, JSON, and the plots, for every evaluation.

`seg-kd eval` writes its folder with `write_report`; bag-eval (`seg_kd_train.bags.report`) adds its
own tables (frames, drops, latency) and uses the same tables and plots. Colours come from the
runtime's `PaletteTable`, so an overlay here is the one the node publishes on `~/overlay`.

Plots (matplotlib, Agg): per-class IoU bars, a reliability diagram (accuracy per confidence bin,
one curve per condition, with the pixel count per bin), latency histogram and timeline, and a grid
of samples (image, ground truth, prediction overlay, confidence).
"""

import json
import math
from pathlib import Path

import numpy as np

from seg_kd_ros.postprocess import PaletteTable

OVERLAY_ALPHA = 0.6
"""Weight of the class colours in the report's prediction overlays."""


def _pyplot():
    """The pyplot module on the file-only Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write a figure as PNG and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def pct(value) -> str:
    """A fraction as a percentage with one decimal; 'n/a' for None or NaN."""
    return f'{100 * value:.1f}' if _finite(value) else 'n/a'


def num(value, fmt: str = '.1f') -> str:
    """A number in `fmt`; 'n/a' for None or NaN."""
    return format(value, fmt) if _finite(value) else 'n/a'


def to_json(value):
    """JSON-safe copy: NaN and inf -> None, numpy scalars and arrays -> Python values."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, data) -> None:
    """Write `data` as strict JSON (NaN as null), indented."""
    path.write_text(json.dumps(to_json(data), indent=2) + '\n')


def metrics_markdown(metrics: dict) -> list[str]:
    """Markdown lines of the metric tables: one row per condition, then IoU per class.

    Args:
        metrics: `SegmentationEvaluator.summary()` (conditions, then 'full'); keys starting with
            '_' are skipped.
    """
    conditions = [c for c in metrics if not c.startswith('_')]
    lines = ['| condition | mIoU (%) | pixel acc. (%) | ECE | pixels |', '|---|---|---|---|---|']
    for c in conditions:
        b = metrics[c]
        lines.append(f"| {c} | {pct(b['miou'])} | {pct(b['pixel_accuracy'])} | "
                     f"{num(b['ece'], '.4f')} | {b['pixels']} |")
    lines += ['', '## IoU per class (%)', '', '| class | ' + ' | '.join(conditions) + ' |',
              '|---|' + '---|' * len(conditions)]
    for cls in metrics['full']['iou']:
        cells = [pct(metrics[c]['iou'][cls]) for c in conditions]
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'n/a: the class is absent from both prediction and ground truth.', '']
    return lines


def plot_iou(path: Path, iou: dict) -> Path:
    """Horizontal bars of the per-class IoU (absent classes shown as 'n/a')."""
    plt = _pyplot()
    names = list(iou)
    values = [100 * v if _finite(v) else 0.0 for v in iou.values()]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(names, values, color='tab:blue')
    for i, v in enumerate(iou.values()):
        ax.text(values[i] + 1, i, pct(v), va='center', fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel('IoU (%)')
    ax.set_title('Per-class IoU (all conditions)')
    return _save(fig, path)


def plot_reliability(path: Path, reliability: dict[str, dict], ece: float) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, pixels per bin.

    Args:
        path: PNG to write.
        reliability: `CalibrationBins.reliability()` per condition; 'full' (all pooled) is drawn
            as bars, every condition as a curve.
        ece: the pooled expected calibration error, for the title.
    """
    plt = _pyplot()
    full = reliability.get('full') or next(iter(reliability.values()))
    edges = full['bin_edges']
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=(3, 1), sharex=True)
    ax1.bar(centers, np.nan_to_num(full['accuracy'], nan=0.0), width=width, color='lightgrey',
            edgecolor='k', label='accuracy (all)')
    ax1.plot([0, 1], [0, 1], 'k--', linewidth=1, label='perfect calibration')
    for name, rel in reliability.items():
        mask = rel['count'] > 0
        ax1.plot(rel['confidence'][mask], rel['accuracy'][mask], marker='o', markersize=3,
                 linewidth=2.0 if name == 'full' else 1.0, label=f'{name}: (confidence, accuracy)')
    ax1.set_ylabel('accuracy')
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1)
    ax1.set_title(f'Reliability diagram (ECE {num(ece, ".4f")})')
    ax1.legend(fontsize=7)
    ax2.bar(centers, full['count'], width=width, color='grey')
    ax2.set_yscale('log')
    ax2.set_xlabel('confidence (max softmax probability)')
    ax2.set_ylabel('pixels')
    return _save(fig, path)


def plot_latency(path: Path, sent_s: list[float], latency_ms: list[float]) -> Path:
    """Latency histogram (with median/p95/p99 lines) and latency over the run."""
    plt = _pyplot()
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
    return _save(fig, path)


def plot_overlays(path: Path, samples: list[dict], palette: PaletteTable) -> Path:
    """A grid, one row per sample: image, ground truth, prediction overlay, confidence.

    Args:
        path: PNG to write.
        samples: dicts with `image` (HxWx3 uint8 RGB), `pred` (HxW labels), optionally `label`
            (ground truth, or None), `confidence` (HxW in [0, 1], or None) and `title` (else
            `condition`). The ground-truth and confidence columns appear when a sample has them.
        palette: the class colours.
    """
    plt = _pyplot()
    with_gt = any(s.get('label') is not None for s in samples)
    with_conf = any(s.get('confidence') is not None for s in samples)
    cols = 2 + with_gt + with_conf
    h, w = samples[0]['image'].shape[:2]
    fig, axes = plt.subplots(len(samples), cols, squeeze=False,
                             figsize=(3.2 * cols, 3.2 * h / w * len(samples) + 0.4))
    for row, s in zip(axes, samples, strict=True):
        image, shape = s['image'], s['image'].shape[:2]
        panels = [(image, s.get('title') or s.get('condition', ''))]
        if with_gt:
            gt = s.get('label')
            panels.append((palette.colorize(gt) if gt is not None
                           else np.zeros((*shape, 3), np.uint8), 'ground truth'))
        panels.append((palette.overlay(image, s['pred'], OVERLAY_ALPHA), 'prediction'))
        if with_conf:
            conf = s.get('confidence')
            panels.append((conf if conf is not None else np.zeros(shape, np.float32),
                           'confidence'))
        for ax, (img, title) in zip(row, panels, strict=True):
            ax.imshow(img, cmap='viridis' if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis('off')
    return _save(fig, path)


def write_report(summary: dict, samples: list[dict], out_dir: str | Path, title: str,
                 palette: list | None = None, notes: list[str] | None = None) -> Path:
    """Write `report.md`, `metrics.json` and the plots of one evaluation into `out_dir`.

    Args:
        summary: `evaluate`'s summary: conditions and 'full', and `_reliability` per condition.
        samples: kept samples for the overlays (see `plot_overlays`).
        out_dir: the report folder (made if missing).
        title: the report's heading.
        palette: the class colours; without them no overlays are drawn.
        notes: Markdown lines under the heading (model, data).

    Returns:
        The path of `report.md`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f'# {title}', '', *(notes or []), '', *metrics_markdown(summary)]
    plot_iou(out_dir / 'per_class_iou.png', summary['full']['iou'])
    lines += ['![per-class IoU](per_class_iou.png)', '']
    if '_reliability' in summary:
        plot_reliability(out_dir / 'reliability.png', summary['_reliability'],
                         summary['full']['ece'])
        lines += ['## Calibration', '', '![reliability diagram](reliability.png)', '']
    if samples and palette is not None:
        plot_overlays(out_dir / 'overlays.png', samples, PaletteTable(palette))
        lines += ['## Samples', '', '![sample overlays](overlays.png)', '']
    report = out_dir / 'report.md'
    report.write_text('\n'.join(lines))
    write_json(out_dir / 'metrics.json', {k: v for k, v in summary.items()
                                          if not k.startswith('_')})
    return report
