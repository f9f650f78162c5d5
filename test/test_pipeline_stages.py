"""The pipeline's stage times: each step of one frame, consistent with the frame's wall time."""

import time

import numpy as np
from tiny_models import CITYSCAPES_PALETTE, make_tiny_onnx

from seg_kd_ros.backends import create_backend
from seg_kd_ros.node_pipeline import SegmentationPipeline


def test_stage_times_cover_the_run_and_only_the_steps_taken(tmp_path):
    model = make_tiny_onnx(tmp_path / 'tiny.onnx', 64, 128, seed=1)
    rng = np.random.default_rng(0)
    with create_backend(model, 'onnxruntime') as backend:
        pipeline = SegmentationPipeline(backend, CITYSCAPES_PALETTE)
        camera = rng.integers(0, 256, (270, 480, 3), np.uint8)
        pipeline.run(camera)  # the first run includes ONNX Runtime's set-up
        start = time.perf_counter()
        result = pipeline.run(camera, confidence_threshold=0.5, overlay_alpha=0.5)
        wall_ms = (time.perf_counter() - start) * 1e3
        stages = result.stages
        steps = (stages.resize_ms, stages.inference_ms, stages.resize_back_ms,
                 stages.postprocess_ms)
        assert all(step > 0 for step in steps)
        assert sum(steps) <= wall_ms
        assert result.inference_ms == stages.inference_ms
        # a frame at the network size, outputs at the network size: nothing to resize (the
        # fastest of five runs, so that a preempted one does not decide)
        small = rng.integers(0, 256, (64, 128, 3), np.uint8)
        runs = [pipeline.run(small, 'network').stages for _ in range(5)]
        inference = min(r.inference_ms for r in runs)
        assert min(r.resize_ms for r in runs) < inference
        assert min(r.resize_back_ms for r in runs) < inference
