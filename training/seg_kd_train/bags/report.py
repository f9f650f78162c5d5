"""The bag-eval report folder: what is particular to playing a bag; tables and plots are shared.

Files: `summary.json` (every figure, NaN written as null), `summary.md` (frames, drops and latency,
then the metric tables of `seg_kd_train.evaluation.report`), `per_class_iou.png`, `latency.png`
(histogram and timeline), `reliability.png` (reliability diagram with ECE), `overlays.png` (input /
ground truth / prediction for a few frames spread over the bag) and, when asked, `overlays.mp4`
(written while playing, by `OverlayVideo`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seg_kd_ros.postprocess import PaletteTable
from seg_kd_train.evaluation.report import (
    OVERLAY_ALPHA,
    metrics_markdown,
    num,
    pct,
    plot_iou,
    plot_latency,
    plot_overlays,
    plot_reliability,
    to_json,
    write_json,
)


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
             f"| {num(lat['median'])} | {num(lat['p95'])} | {num(lat['p99'])} | "
             f"{num(lat['max'])} | {num(summary['throughput_fps'], '.2f')} |", '',
             'Latency: receive time of the last output of a frame minus its send time '
             '(one clock, this process).', '']
    if summary.get('read_error'):
        lines += [f"**Bag damaged:** {summary['read_error']}", '']
    if summary.get('malformed_reasons'):
        lines += ['Skipped frames (first reasons):', '']
        lines += [f'- {r}' for r in summary['malformed_reasons']] + ['']
    lines += frames_by_condition_markdown(summary)
    if summary.get('metrics'):
        lines += metrics_markdown(summary['metrics'])
    else:
        lines += ['No ground truth in the bag: latency, drops and overlays only.', '']
    lines += ['Files: ' + ', '.join(f'`{n}`' for n in summary['files'])]
    path.write_text('\n'.join(lines) + '\n')


def frames_by_condition_markdown(summary: dict) -> list[str]:
    """Frames sent, answered and unanswered per condition, beside the condition's mIoU.

    Scores cover answered frames only: where frames went unanswered, the table says how many,
    so a condition's score (or its absence) is never read as covering frames it does not.
    """
    counts = summary.get('frames_by_condition') or {}
    if not counts:
        return []
    metrics = summary.get('metrics') or {}
    lines = []
    unanswered = {c: n['unanswered'] for c, n in counts.items() if n['unanswered']}
    if unanswered:
        total = sum(n['sent'] for n in counts.values())
        where = ', '.join(f'{c} {n}' for c, n in unanswered.items())
        lines += [f'**{sum(unanswered.values())} of {total} frames went unanswered** ({where}): '
                  "a condition's scores cover its answered frames only. Without `--rate`, "
                  'bag-eval sends the next frame once the previous one is answered.', '']
    lines += ['| condition | frames sent | answered | unanswered | mIoU of the answered (%) |',
              '|---|---|---|---|---|']
    for c, n in counts.items():
        miou = pct(metrics[c]['miou']) if c in metrics else ('none scored' if metrics else '-')
        lines.append(f"| {c} | {n['sent']} | {n['answered']} | {n['unanswered']} | {miou} |")
    return lines + ['']


class OverlayVideo:
    """MP4 (mp4v) of the prediction overlays, one video frame per answered frame."""

    def __init__(self, path: Path, fps: float, palette: PaletteTable,
                 max_width: int = 960) -> None:
        self.path, self.fps, self.palette, self.max_width = path, fps, palette, max_width
        self.writer = None
        self.size = None

    def add(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Append the overlay of one frame (resized to the first frame's size)."""
        img = self.palette.overlay(rgb, labels, OVERLAY_ALPHA)
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
                 latency_ms: list[float], samples: list[dict], palette: PaletteTable) -> None:
    """Write summary.json, summary.md and the plots into `out` (which exists).

    Args:
        out: the report folder.
        summary: bag-eval's summary (frames, latency, metrics or None, files so far).
        reliability: `CalibrationBins.reliability()` of all frames pooled, or None.
        sent_s: send time of each answered frame since the first, s.
        latency_ms: latency of each answered frame.
        samples: frames kept for the grid: `rgb`, `pred`, `gt` (or None), `index`, `condition`,
            `latency_ms`.
        palette: the class colours.
    """
    files = list(summary.get('files', []))
    if latency_ms:
        plot_latency(out / 'latency.png', sent_s, latency_ms)
        files.append('latency.png')
    if samples:
        grid = [{'image': s['rgb'], 'label': s['gt'], 'pred': s['pred'],
                 'title': f"#{s['index']} {s['condition']} ({s['latency_ms']:.0f} ms)"}
                for s in samples]
        plot_overlays(out / 'overlays.png', grid, palette)
        files.append('overlays.png')
    metrics = summary.get('metrics')
    if metrics:
        plot_iou(out / 'per_class_iou.png', metrics['full']['iou'])
        files.append('per_class_iou.png')
        if reliability is not None and reliability['count'].sum() > 0:
            plot_reliability(out / 'reliability.png', {'full': reliability},
                             metrics['full']['ece'])
            files.append('reliability.png')
    summary['files'] = ['summary.md', 'summary.json'] + files
    write_json(out / 'summary.json', summary)
    write_markdown(out / 'summary.md', to_json(summary))
