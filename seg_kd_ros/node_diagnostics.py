"""Counters, rates and latency percentiles of the segmenter node, published on /diagnostics.

`FrameStats` is written from two threads (the subscription callback and the inference worker) and
read by the diagnostics timer, so every access holds one lock. Latency percentiles are computed
over the most recent `window` frames.
"""

from collections import deque
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np

PERCENTILES = (50, 90, 99)


class FrameStats:
    """Thread-safe frame counters and latency samples."""

    def __init__(self, window: int = 512) -> None:
        """Create empty statistics.

        Args:
            window: number of most recent latency samples the percentiles are taken over.
        """
        self._lock = threading.Lock()
        self.received = 0
        self.published = 0
        self.dropped = 0
        self.rejected = 0
        self.errors = 0
        self.overlays = 0
        self.stamps_out_of_range = 0
        self.last_reject_reason = ''
        self.last_error = ''
        self._e2e_ms: deque[float] = deque(maxlen=window)
        self._infer_ms: deque[float] = deque(maxlen=window)
        self._last_report = (time.monotonic(), 0, 0, 0)  # time, received, published, rejected

    def count_received(self) -> None:
        """Count a frame taken from the subscription."""
        with self._lock:
            self.received += 1

    def count_dropped(self) -> None:
        """Count a stale frame replaced by a newer one before it was processed."""
        with self._lock:
            self.dropped += 1

    def count_rejected(self, reason: str) -> None:
        """Count a frame that could not be used (bad encoding, size, data...)."""
        with self._lock:
            self.rejected += 1
            self.last_reject_reason = reason

    def count_error(self, reason: str) -> None:
        """Count a frame whose inference failed unexpectedly."""
        with self._lock:
            self.errors += 1
            self.last_error = reason

    def count_published(self, e2e_ms: float | None, infer_ms: float) -> None:
        """Count a processed frame with its end-to-end (None: unstamped) and inference latency."""
        with self._lock:
            self.published += 1
            if e2e_ms is not None:
                self._e2e_ms.append(e2e_ms)
            self._infer_ms.append(infer_ms)

    def count_stamp_out_of_range(self) -> bool:
        """Count a frame whose stamp cannot give a latency; return True for the first one."""
        with self._lock:
            self.stamps_out_of_range += 1
            return self.stamps_out_of_range == 1

    def count_overlay(self) -> None:
        """Count an overlay computed and published (only while someone subscribes)."""
        with self._lock:
            self.overlays += 1

    def snapshot(self) -> dict[str, float | int | str]:
        """Return the counters, rates since the previous snapshot and latency percentiles."""
        now = time.monotonic()
        with self._lock:
            then, received, published, rejected = self._last_report
            elapsed = max(now - then, 1e-9)
            values: dict[str, float | int | str] = {
                'input_rate_hz': (self.received - received) / elapsed,
                'output_rate_hz': (self.published - published) / elapsed,
                'frames_received': self.received,
                'frames_published': self.published,
                'frames_dropped': self.dropped,
                'frames_rejected': self.rejected,
                'overlays_published': self.overlays,
                'stamps_out_of_range': self.stamps_out_of_range,
                'rejected_since_last_report': self.rejected - rejected,
                'last_reject_reason': self.last_reject_reason,
                'inference_errors': self.errors,
                'last_inference_error': self.last_error,
            }
            for key, samples in (('latency_e2e', self._e2e_ms),
                                 ('latency_inference', self._infer_ms)):
                pct = np.percentile(np.asarray(samples), PERCENTILES) if samples else None
                for i, p in enumerate(PERCENTILES):
                    values[f'{key}_p{p}_ms'] = float(pct[i]) if pct is not None else float('nan')
            self._last_report = (now, self.received, self.published, self.rejected)
        return values


def build_diagnostics(stamp, name: str, hardware_id: str, values: dict,
                      static: dict[str, str]) -> DiagnosticArray:
    """Turn a `FrameStats.snapshot()` into a one-status DiagnosticArray.

    Args:
        stamp: builtin_interfaces/Time of the array.
        name: status name (the node's fully qualified name).
        hardware_id: status hardware id (the model name).
        values: the snapshot.
        static: fixed entries (backend, precision, device, model...).

    Returns:
        The array; level OK, WARN when frames were rejected since the last report or no frame
        arrived, ERROR when inference failed.
    """
    level, message = DiagnosticStatus.OK, 'running'
    if values['frames_received'] == 0:
        level, message = DiagnosticStatus.WARN, 'no input frame received yet'
    if values['rejected_since_last_report']:
        level = DiagnosticStatus.WARN
        message = f'rejected input: {values["last_reject_reason"]}'
    if values['inference_errors']:
        level = DiagnosticStatus.ERROR
        message = f'inference failed: {values["last_inference_error"]}'
    entries = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    entries += [KeyValue(key=k, value=str(v)) for k, v in static.items()]
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=entries)
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def _fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)
