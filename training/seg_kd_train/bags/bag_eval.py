"""Play a bag into a running segmenter_node over DDS, match its outputs by stamp and score them.

Pacing: by default (`rate=None`, closed loop) the next frame goes out as soon as the previous one
is answered or `timeout_s` passed, so accuracy is scored on every frame however slow the model.
A fixed rate is for latency runs: `rate=r` sends frame i at `t0 + (bag_time_i - bag_time_0) / r`
(the recorded rate times r), `rate=inf` ("max") sends the frames back to back. A frame is
*answered* when `~/labels` (and `~/confidence`, if listened to) with its stamp arrived; one
unanswered `timeout_s` after sending is a *drop* (the node keeps only the newest frame, so drops
are expected when frames come faster than it infers), counted per condition in the summary beside
that condition's scores. The report is written into a staging folder and renamed into place at
the end: a failed run leaves no report folder, a previous report at `out` is replaced.

Latency = arrival of the frame's last output - its send time, both on this process's
`time.perf_counter`. Outputs at another resolution than the frame (`output_resolution:
network`) are resized to it (labels nearest-exact with `seg_kd_ros.postprocess.resize_labels`,
the node's own convention, confidence linear) before scoring against the ground truth.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import math
from pathlib import Path
import queue
import time

import cv2
import numpy as np
from tqdm import tqdm

from seg_kd_ros.atomic_files import atomic_folder
from seg_kd_ros.postprocess import PaletteTable, resize_labels
from seg_kd_train.data.cityscapes_labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from seg_kd_train.errors import SegKdError
from seg_kd_train.evaluation.metrics import SegmentationEvaluator

from .player import ClassMap, NodePlayer, Output
from .reader import BagFrames, Frame
from .report import OverlayVideo, write_report


@dataclass
class EvalOptions:
    """How to play the bag and where the node's topics are."""

    rate: float | None = None  # None: next frame once answered; r: r x recorded; inf: no wait
    image_topic: str | None = None
    input_topic: str | None = None  # default '/image' or '/image/compressed'
    labels_topic: str = '/segmenter/labels'
    confidence_topic: str = '/segmenter/confidence'
    class_names_topic: str = '/segmenter/class_names'
    output_reliability: str = 'reliable'
    timeout_s: float = 5.0
    wait_s: float = 30.0
    warmup: int = 1
    grid: int = 6
    mp4: bool = False
    limit: int | None = None
    progress: bool = True


@dataclass
class _Pending:
    frame: Frame
    sent: float
    labels: Output | None = None
    confidence: Output | None = None


@dataclass
class _Tally:
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    confidence_missing: int = 0
    unmatched: int = 0
    first_sent: float | None = None
    last_sent: float | None = None
    last_received: float | None = None
    sent_s: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    by_condition: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, condition: str, what: str) -> None:
        """Count one frame of `condition` as 'sent', 'answered' or 'unanswered'."""
        counts = self.by_condition.setdefault(condition, dict.fromkeys(
            ('sent', 'answered', 'unanswered'), 0))
        counts[what] += 1


def pacing(rate: float | None) -> str:
    """How frames are paced, in words (summary.json's and summary.md's `rate`)."""
    if rate is None:
        return 'next frame once answered (closed loop)'
    if math.isinf(rate):
        return 'max (fixed: back to back, no waiting)'
    return f'{rate:g}x recorded (fixed)'


def check_report_folder(out: Path) -> None:
    """Refuse an `out` that is not free or a previous report (it is replaced whole)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / 'summary.json').is_file())):
        raise SegKdError(f'--out {out} exists and is not a bag-eval report folder (a previous '
                         'report is replaced whole); choose another --out')


def _classes(class_map: ClassMap | None) -> tuple[list[str], list]:
    """Class names and palette from the node's `~/class_names` (Cityscapes if absent).

    LabelInfo carries no colours: the Cityscapes palette colours its first classes.
    """
    if class_map is not None and class_map.names:
        palette = class_map.palette or CITYSCAPES_PALETTE
        return list(class_map.names), list(palette)[:len(class_map.names)]
    return list(CITYSCAPES_CLASSES), list(CITYSCAPES_PALETTE)


class BagEvaluation:
    """One run of bag-eval: owns the bag, the player, the scores and the report folder."""

    def __init__(self, bag: str | Path, out: str | Path, options: EvalOptions) -> None:
        self.options = options
        self.out = Path(out)
        check_report_folder(self.out)
        self.work = self.out  # the staging folder while `run` writes
        self.bag = BagFrames(bag, options.image_topic)
        self.input_topic = options.input_topic or (
            '/image/compressed' if self.bag.compressed else '/image')
        self.tally = _Tally()
        self.pending: OrderedDict[int, _Pending] = OrderedDict()
        self.warmup_stamps: set[int] = set()
        self.samples: list[dict] = []
        self.video: OverlayVideo | None = None
        self.evaluator: SegmentationEvaluator | None = None
        self.lut = PaletteTable(CITYSCAPES_PALETTE)
        self.class_map: ClassMap | None = None

    def run(self) -> dict:
        """Play, score and write the report; returns the summary dict (also in summary.json)."""
        with atomic_folder(self.out) as work:
            work.mkdir()
            self.work = work
            return self._run()

    def _run(self) -> dict:
        opts = self.options
        player = None
        try:
            player = NodePlayer(self.input_topic, self.bag.compressed, opts.labels_topic,
                                opts.confidence_topic, opts.class_names_topic,
                                opts.output_reliability)
            player.wait_for_node(opts.wait_s)
            self.class_map = player.wait_class_names(2.0)
            names, palette = _classes(self.class_map)
            self.lut = PaletteTable(palette)
            if self.bag.has_ground_truth:
                self.evaluator = SegmentationEvaluator(len(names), names)
            total = self.bag.num_frames if opts.limit is None else min(opts.limit,
                                                                        self.bag.num_frames)
            step = max(1, total // max(1, opts.grid))
            self.grid_at = set(range(step // 2, total, step)) if opts.grid else set()
            self._play(player, total)
        finally:
            if player is not None:
                player.close()
            self.bag.close()
            if self.video:
                self.video.close()
        return self._finish(names)

    # -- playing ---------------------------------------------------------------------------
    def _play(self, player: NodePlayer, total: int) -> None:
        opts, tally = self.options, self.tally
        frames = self.bag.frames()
        bar = tqdm(total=total, desc='bag-eval', unit='frame',
                   disable=None if opts.progress else True)  # off without a TTY
        t0 = first_ns = None
        for frame in frames:
            if opts.limit is not None and frame.index >= opts.limit:
                break
            if t0 is None:
                self._warm_up(player, frame)
                t0, first_ns = time.perf_counter(), frame.bag_ns
            if opts.rate is not None:
                self._drain(player, until=t0 + (frame.bag_ns - first_ns) / 1e9 / opts.rate)
            else:
                deadline = time.perf_counter() + opts.timeout_s
                while self.pending and time.perf_counter() < deadline:
                    self._drain(player, until=min(deadline, time.perf_counter() + 0.05))
            sent = player.send(self.bag.serialize(frame, frame.stamp_ns))
            self.pending[frame.stamp_ns] = _Pending(frame, sent)
            tally.sent += 1
            tally.count(frame.condition, 'sent')
            tally.first_sent = tally.first_sent if tally.first_sent is not None else sent
            tally.last_sent = sent
            self._drain(player, until=0.0)
            bar.update(1)
            bar.set_postfix(answered=tally.answered, dropped=tally.dropped, refresh=False)
        deadline = time.perf_counter() + opts.timeout_s
        while self.pending and time.perf_counter() < deadline:
            self._drain(player, until=min(deadline, time.perf_counter() + 0.05))
        self._expire(float('inf'))
        bar.set_postfix(answered=tally.answered, dropped=tally.dropped)
        bar.close()

    def _warm_up(self, player: NodePlayer, frame: Frame) -> None:
        """Send the first frame `warmup` times under stamps of its own; not scored."""
        for k in range(self.options.warmup):
            stamp = max(1, frame.stamp_ns - 10**9 * (k + 1))
            self.warmup_stamps.add(stamp)
            player.send(self.bag.serialize(frame, stamp))
            deadline = time.perf_counter() + max(self.options.timeout_s, 30.0)
            while time.perf_counter() < deadline:
                try:
                    out = player.outputs.get(timeout=0.05)
                except queue.Empty:
                    continue
                if out.stamp_ns == stamp and out.kind == 'labels':
                    break
        time.sleep(0.05)
        while not player.outputs.empty():  # late warm-up outputs
            player.outputs.get_nowait()

    def _drain(self, player: NodePlayer, until: float) -> None:
        """Handle outputs until `until` (perf_counter); at least what is queued now."""
        while True:
            wait = until - time.perf_counter()
            try:
                out = player.outputs.get(timeout=wait) if wait > 0 else player.outputs.get_nowait()
            except queue.Empty:
                break
            self._handle(out)
        self._expire(time.perf_counter())

    def _handle(self, out: Output) -> None:
        pending = self.pending.get(out.stamp_ns)
        if pending is None:
            if out.stamp_ns not in self.warmup_stamps:
                self.tally.unmatched += 1
            return
        setattr(pending, out.kind, out)
        if pending.labels is not None and (pending.confidence is not None
                                           or not self.options.confidence_topic):
            del self.pending[out.stamp_ns]
            self._score(pending)

    def _expire(self, now: float) -> None:
        while self.pending:
            stamp, pending = next(iter(self.pending.items()))
            if now - pending.sent < self.options.timeout_s:
                break
            del self.pending[stamp]
            if pending.labels is not None:
                self.tally.confidence_missing += 1
                self._score(pending)
            else:
                self.tally.dropped += 1
                self.tally.count(pending.frame.condition, 'unanswered')

    # -- scoring ---------------------------------------------------------------------------
    def _score(self, p: _Pending) -> None:
        tally, frame = self.tally, p.frame
        outputs = [o for o in (p.labels, p.confidence) if o is not None]
        received = max(o.received for o in outputs)
        tally.answered += 1
        tally.count(frame.condition, 'answered')
        tally.last_received = max(received, tally.last_received or received)
        tally.sent_s.append(p.sent - tally.first_sent)
        tally.latency_ms.append(1000.0 * (received - p.sent))
        h, w = frame.rgb.shape[:2]
        labels = p.labels.array
        if labels.shape != (h, w):
            labels = resize_labels(labels, (h, w))
        conf = None
        if p.confidence is not None:
            conf = p.confidence.array.astype(np.float32)
            if p.confidence.array.dtype == np.uint8:
                conf /= 255.0
            if conf.shape != (h, w):
                conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.evaluator is not None and frame.label is not None:
            self.evaluator.update(labels, conf, frame.label, frame.condition)
        if frame.index in self.grid_at:
            scale = min(1.0, 480 / w)
            size = (max(1, int(w * scale)), max(1, int(h * scale)))

            def small(a, interp=None):  # labels nearest-exact, the picture by area
                if scale >= 1:
                    return a.copy()
                if interp is None:
                    return resize_labels(a, size[::-1])
                return cv2.resize(a, size, interpolation=interp)
            self.samples.append(dict(
                index=frame.index, condition=frame.condition, latency_ms=tally.latency_ms[-1],
                rgb=small(frame.rgb, cv2.INTER_AREA), pred=small(labels),
                gt=None if frame.label is None else small(frame.label)))
        if self.options.mp4:
            if self.video is None:
                fps = self.bag.num_frames / max(1e-9, self._bag_duration_s()) or 10.0
                self.video = OverlayVideo(self.work / 'overlays.mp4', min(60.0, fps), self.lut)
            self.video.add(frame.rgb, labels)

    def _bag_duration_s(self) -> float:
        conn = self.bag.image_conn
        duration = (self.bag.reader.end_time - self.bag.reader.start_time) / 1e9
        return duration * conn.msgcount / max(1, conn.msgcount - 1) if duration > 0 else 0.1

    def _finish(self, names: list[str]) -> dict:
        tally, stats = self.tally, self.bag.stats
        lat = np.asarray(tally.latency_ms)

        def pct(q: float) -> float:
            return float(np.percentile(lat, q)) if lat.size else float('nan')
        span = ((tally.last_received - tally.first_sent)
                if tally.answered and tally.last_received else 0.0)
        summary = {
            'bag': str(self.bag.path), 'topics': self.bag.topics,
            'image_topic': self.bag.image_conn.topic,
            'image_type': 'compressed' if self.bag.compressed else 'raw',
            'input_topic': self.input_topic, 'labels_topic': self.options.labels_topic,
            'confidence_topic': self.options.confidence_topic,
            'rate': pacing(self.options.rate),
            'frames': {'in_bag': self.bag.num_frames, 'malformed': stats.malformed,
                       'sent': tally.sent, 'answered': tally.answered,
                       'dropped': tally.dropped, 'confidence_missing': tally.confidence_missing,
                       'unmatched_outputs': tally.unmatched},
            'frames_by_condition': tally.by_condition,
            'malformed_reasons': stats.reasons, 'read_error': stats.error,
            'latency_ms': {'median': pct(50), 'p95': pct(95), 'p99': pct(99),
                           'mean': float(lat.mean()) if lat.size else float('nan'),
                           'max': float(lat.max()) if lat.size else float('nan')},
            'throughput_fps': tally.answered / span if span > 0 else float('nan'),
            'play_s': (tally.last_sent - tally.first_sent) if tally.sent else 0.0,
            'classes': names,
            'classes_from': self.class_map.source if self.class_map else 'default (Cityscapes)',
            'node_confidence_threshold': self.class_map.threshold if self.class_map else None,
            'metrics': self.evaluator.summary() if self.evaluator else None,
            'files': ['overlays.mp4'] if self.video else [],
        }
        if summary['metrics'] is not None and summary['metrics']['full']['pixels'] == 0:
            summary['metrics'] = None  # ground truth topic present but nothing was scored
        reliability = (self.evaluator.calibration['full'].reliability()
                       if self.evaluator else None)
        write_report(self.work, summary, reliability, tally.sent_s, tally.latency_ms,
                     self.samples, self.lut)
        return summary


def evaluate_bag(bag: str | Path, out: str | Path, options: EvalOptions | None = None) -> dict:
    """Play `bag` into the running node and write the report into `out`; returns the summary."""
    return BagEvaluation(bag, out, options or EvalOptions()).run()
