"""Markdown evaluation report: tables per condition and per class, reliability, overlays."""

import json
import math
from pathlib import Path

import numpy as np


def _pct(value: float) -> str:
    return 'n/a' if value is None or math.isnan(value) else f'{100 * value:.1f}'


def plot_reliability(reliability: dict[str, dict], out_png: Path) -> Path:
    """Reliability diagram: accuracy against confidence per bin, one curve per condition."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], 'k--', linewidth=1, label='perfect calibration')
    for name, rel in reliability.items():
        mask = rel['count'] > 0
        ax.plot(rel['confidence'][mask], rel['accuracy'][mask], marker='o', markersize=3,
                linewidth=2.5 if name == 'full' else 1.0, label=name)
    ax.set_xlabel('confidence (max softmax probability)')
    ax.set_ylabel('accuracy')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title('reliability diagram')
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def plot_overlays(samples: list[dict], palette: list, out_png: Path,
                  ignore_index: int = 255) -> Path:
    """One row per sample: image, ground truth, prediction (palette blended), confidence."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    lut = np.zeros((256, 3), np.uint8)
    lut[:len(palette)] = np.asarray(palette, np.uint8)
    fig, axes = plt.subplots(len(samples), 4, figsize=(12, 2.2 * len(samples)), squeeze=False)
    for row, s in zip(axes, samples, strict=True):
        gt = lut[s['label']]
        gt[s['label'] == ignore_index] = 0
        pred = (0.4 * s['image'] + 0.6 * lut[s['pred']]).astype(np.uint8)
        for ax, img, title in zip(row, (s['image'], gt, pred, s['confidence']),
                                  (s['condition'], 'ground truth', 'prediction', 'confidence'),
                                  strict=True):
            ax.imshow(img, cmap='viridis' if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis('off')
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def write_report(summary: dict, samples: list[dict], out_dir: str | Path, title: str,
                 palette: list | None = None, notes: list[str] | None = None) -> Path:
    """Write `report.md`, `metrics.json`, `reliability.png` and `overlays.png` into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    conditions = [k for k in summary if not k.startswith('_')]
    lines = [f'# {title}', '']
    lines += [n for n in notes or []]
    lines += ['', '| condition | mIoU (%) | pixel acc. (%) | ECE | pixels |',
              '|---|---|---|---|---|']
    for c in conditions:
        b = summary[c]
        ece = 'n/a' if math.isnan(b['ece']) else f'{b["ece"]:.3f}'
        lines.append(f'| {c} | {_pct(b["miou"])} | {_pct(b["pixel_accuracy"])} | {ece} | '
                     f'{b["pixels"]} |')
    lines += ['', '## IoU per class (%)', '', '| class | ' + ' | '.join(conditions) + ' |',
              '|---|' + '---|' * len(conditions)]
    for cls in summary['full']['iou']:
        cells = [_pct(summary[c]['iou'][cls]) for c in conditions]
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'n/a: the class is absent from both prediction and ground truth.', '']
    if '_reliability' in summary:
        plot_reliability(summary['_reliability'], out_dir / 'reliability.png')
        lines += ['## Calibration', '', '![reliability diagram](reliability.png)', '']
    if samples and palette is not None:
        plot_overlays(samples, palette, out_dir / 'overlays.png')
        lines += ['## Samples', '', '![sample overlays](overlays.png)', '']
    report = out_dir / 'report.md'
    report.write_text('\n'.join(lines))
    plain = {k: v for k, v in summary.items() if not k.startswith('_')}
    (out_dir / 'metrics.json').write_text(json.dumps(plain, indent=1, allow_nan=True))
    return report
