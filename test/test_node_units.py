"""The node's parts without DDS: one-slot buffer, frame pipeline, statistics, validation."""

import threading
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
import numpy as np
import pytest
from tiny_models import CITYSCAPES_PALETTE, make_tiny_onnx, tiny_metadata

from seg_kd_ros.backends import create_backend
from seg_kd_ros.node_diagnostics import FrameStats, build_diagnostics
from seg_kd_ros.node_parameters import (
    DEFAULT_MAX_INPUT_PIXELS,
    PARAMETERS,
    ParameterError,
    validate,
)
from seg_kd_ros.node_pipeline import LatestFrame, SegmentationPipeline
from seg_kd_ros.postprocess import resize_outputs
from seg_kd_ros.preprocessing import resize_to_network


def test_latest_frame_keeps_only_the_newest_and_reports_drops():
    buffer = LatestFrame()
    assert buffer.take(timeout=0.01) is None
    assert buffer.put('a') is False
    assert buffer.put('b') is True  # 'a' dropped
    assert buffer.put('c') is True
    assert buffer.take(timeout=0.01) == 'c'
    assert buffer.take(timeout=0.01) is None


def test_latest_frame_wakes_a_waiting_taker_and_close_releases_it():
    buffer = LatestFrame()
    got = []
    taker = threading.Thread(target=lambda: got.append(buffer.take(timeout=10.0)))
    taker.start()
    time.sleep(0.05)
    buffer.put('frame')
    taker.join(5.0)
    assert got == ['frame']
    start = time.monotonic()
    closer = threading.Thread(target=lambda: got.append(buffer.take(timeout=10.0)))
    closer.start()
    buffer.close()
    closer.join(5.0)
    assert got[-1] is None and time.monotonic() - start < 5.0


@pytest.fixture(scope='module')
def backend(tmp_path_factory):
    model = make_tiny_onnx(tmp_path_factory.mktemp('units') / 'tiny.onnx', 32, 48, seed=5)
    with create_backend(model, 'onnxruntime') as b:
        yield b


def test_pipeline_resolutions_threshold_and_overlay(backend):
    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), np.uint8)
    pipeline = SegmentationPipeline(backend, CITYSCAPES_PALETTE)
    net_labels, net_conf = backend.infer(resize_to_network(rgb, (32, 48))[np.newaxis])
    out = pipeline.run(rgb, 'network')
    np.testing.assert_array_equal(out.labels, net_labels[0])
    np.testing.assert_array_equal(out.confidence, net_conf[0])
    assert out.overlay is None and out.inference_ms > 0
    ref_labels, ref_conf = resize_outputs(net_labels[0], net_conf[0], (50, 70))
    out = pipeline.run(rgb, 'input', confidence_threshold=0.4, overlay_alpha=1.0)
    assert out.labels.shape == out.confidence.shape == (50, 70)
    low = ref_conf < 0.4
    assert low.any() and (~low).any()
    assert (out.labels[low] == 255).all()
    np.testing.assert_array_equal(out.labels[~low], ref_labels[~low])
    palette = np.asarray(CITYSCAPES_PALETTE, np.uint8)
    np.testing.assert_array_equal(out.overlay[~low], palette[out.labels[~low]])
    np.testing.assert_array_equal(out.overlay[low], rgb[low])  # no colour for 255


def test_pipeline_thresholds_to_the_models_own_ignore_index(tmp_path):
    meta = tiny_metadata(32, 48)
    meta['ignore_index'] = 200
    model = make_tiny_onnx(tmp_path / 'ignore200.onnx', 32, 48, metadata=meta, seed=5)
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), np.uint8)
    with create_backend(model, 'onnxruntime') as backend:
        out = SegmentationPipeline(backend, CITYSCAPES_PALETTE).run(
            rgb, confidence_threshold=0.4, overlay_alpha=0.5)
    low = out.confidence < 0.4
    assert low.any() and (out.labels[low] == 200).all() and (out.labels[~low] < 19).all()
    np.testing.assert_array_equal(out.overlay[low], rgb[low])


def test_frame_stats_counts_rates_and_percentiles():
    stats = FrameStats(window=4)
    empty = stats.snapshot()
    assert np.isnan(empty['latency_e2e_p50_ms'])
    for i in range(6):
        stats.count_received()
        stats.count_published(e2e_ms=10.0 * (i + 1), infer_ms=float(i + 1))
    stats.count_dropped()
    stats.count_rejected('bad step')
    stats.count_published(e2e_ms=None, infer_ms=7.0)  # unstamped frame: no end-to-end sample
    values = stats.snapshot()
    assert (values['frames_received'], values['frames_published'], values['frames_dropped'],
            values['frames_rejected']) == (6, 7, 1, 1)
    assert values['last_reject_reason'] == 'bad step'
    assert values['latency_e2e_p50_ms'] == pytest.approx(45.0)  # window: 30, 40, 50, 60
    assert values['latency_inference_p99_ms'] == pytest.approx(6.97)  # 4, 5, 6, 7
    assert values['input_rate_hz'] > 0
    array = build_diagnostics(Time(),
                              '/ns/segmenter', 'tiny', values, {'backend': 'onnxruntime'})
    status = array.status[0]
    assert status.level == DiagnosticStatus.WARN and 'bad step' in status.message
    keys = {kv.key for kv in status.values}
    assert {'backend', 'frames_dropped', 'latency_e2e_p99_ms'} <= keys
    assert stats.snapshot()['rejected_since_last_report'] == 0


@pytest.mark.parametrize('name, value', [
    ('backend', 'caffe'), ('device', 'gpu'), ('device', 'cuda:x'), ('output_resolution', 'half'),
    ('confidence_encoding', 'mono16'), ('input_transport', 'h264'), ('qos_reliability', 'fast'),
    ('confidence_threshold', 1.01), ('overlay_alpha', -0.1), ('max_input_pixels', 0),
    ('model_path', ''),
])
def test_validate_rejects_with_the_parameter_name(name, value):
    with pytest.raises(ParameterError, match=name):
        validate(name, value)


def test_validate_accepts_defaults_and_good_values():
    for name, (default, *_rest) in PARAMETERS.items():
        if name != 'model_path':
            assert validate(name, default) == default
    assert validate('device', 'cuda:1') == 'cuda:1'
    assert PARAMETERS['max_input_pixels'][0] == DEFAULT_MAX_INPUT_PIXELS == 7680 * 4320
    assert all(description for _, description, _, _ in PARAMETERS.values())
