"""What the segmenter node does to one frame, without ROS.

A one-slot frame buffer and the
resize -> infer -> resize back -> threshold -> overlay pipeline around an inference backend.
The resizes use the conventions docs/model_file.md states (frame bilinear on uint8, labels
nearest-exact, confidence bilinear); the backend gets the frame's bytes, normalised in the graph.
`seg-kd eval` of a model file runs this same pipeline, so it scores what the node publishes.
"""

from dataclasses import dataclass
import threading
import time

import numpy as np

from seg_kd_ros.backends import InferenceBackend
from seg_kd_ros.postprocess import PaletteTable, apply_threshold, resize_outputs
from seg_kd_ros.preprocessing import resize_to_network


class LatestFrame:
    """A buffer of one frame: putting a new frame replaces (drops) one not yet taken.

    The subscription callback puts, the inference worker takes, so the worker always gets the
    newest frame and memory holds at most one waiting frame however fast the camera is.
    """

    def __init__(self) -> None:
        """Create an empty buffer."""
        self._cond = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item) -> bool:
        """Store `item`, replacing a waiting one; return True if one was replaced (dropped)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float):
        """Return the waiting item and empty the buffer, or None after `timeout` s or on close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
        return item

    def close(self) -> None:
        """Wake a waiting `take` for good (used at shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class StageTimes:
    """How long each step of `SegmentationPipeline.run` took for one frame, in milliseconds.

    Attributes:
        resize_ms: the frame to the network size (0 when it has it already).
        inference_ms: the backend's `infer`.
        resize_back_ms: labels and confidence back to the frame size (0 at 'network').
        postprocess_ms: confidence threshold and overlay.
    """

    resize_ms: float = 0.0
    inference_ms: float = 0.0
    resize_back_ms: float = 0.0
    postprocess_ms: float = 0.0


@dataclass
class FrameResult:
    """The outputs for one frame, all at the same resolution.

    Attributes:
        labels: uint8 HxW trainIds, the model's `ignore_index` where confidence < the
            threshold.
        confidence: float32 HxW in [0, 1].
        overlay: uint8 HxWx3 RGB, or None when not asked for.
        stages: the time of each step (`time.perf_counter`, a few calls per frame).
    """

    labels: np.ndarray
    confidence: np.ndarray
    overlay: np.ndarray | None
    stages: StageTimes

    @property
    def inference_ms(self) -> float:
        """Time spent in the backend's `infer`."""
        return self.stages.inference_ms


class SegmentationPipeline:
    """Runs a backend on one RGB frame and returns labels, confidence and an optional overlay."""

    def __init__(self, backend: InferenceBackend, palette: list) -> None:
        """Wrap a loaded backend.

        Args:
            backend: the inference backend (its metadata gives the network input size).
            palette: one [r, g, b] per class, for the overlay.
        """
        self.backend = backend
        self.palette = PaletteTable(palette)  # the colour table, built once, not per frame
        self.ignore_index = int(backend.metadata.ignore_index)
        self.input_size = tuple(int(v) for v in backend.metadata.input_size)

    def run(self, rgb: np.ndarray, output_resolution: str = 'input',
            confidence_threshold: float = 0.0, overlay_alpha: float | None = None) -> FrameResult:
        """Segment one frame.

        Args:
            rgb: HxWx3 uint8 RGB at any size.
            output_resolution: 'input' (labels nearest-exact, confidence bilinear back to HxW) or
                'network' (outputs at the model input size).
            confidence_threshold: pixels below it get the model's `ignore_index` (0 disables).
            overlay_alpha: blend weight of the palette; None computes no overlay.

        Returns:
            The frame's outputs.
        """
        height, width = rgb.shape[:2]
        t0 = time.perf_counter()
        net_rgb = rgb if (height, width) == self.input_size else resize_to_network(
            rgb, self.input_size)
        batch = np.ascontiguousarray(net_rgb)[np.newaxis]
        t1 = time.perf_counter()
        labels, confidence = self.backend.infer(batch)
        t2 = time.perf_counter()
        labels, confidence = labels[0], confidence[0]
        base = net_rgb
        if output_resolution == 'input' and (height, width) != self.input_size:
            labels, confidence = resize_outputs(labels, confidence, (height, width))
            base = rgb
        t3 = time.perf_counter()
        labels = apply_threshold(labels, confidence, confidence_threshold, self.ignore_index)
        overlay = None
        if overlay_alpha is not None:
            overlay = self.palette.overlay(base, labels, overlay_alpha)
        labels = labels.astype(np.uint8, copy=False)
        t4 = time.perf_counter()
        stages = StageTimes(resize_ms=(t1 - t0) * 1e3, inference_ms=(t2 - t1) * 1e3,
                            resize_back_ms=(t3 - t2) * 1e3, postprocess_ms=(t4 - t3) * 1e3)
        return FrameResult(labels, confidence, overlay, stages)

