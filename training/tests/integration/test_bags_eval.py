"""`bag-eval` against a real segmenter_node process (tiny ONNX model) over DDS.

The expected metrics are computed here from the ONNX Runtime backend's own labels and confidence on
the same frames; the frames are at the network size, so the node's outputs must match them exactly.
"""

from collections.abc import Iterator
import json
import math
from pathlib import Path

import cv2
from node_harness import NodeProcess, node_args, unique_namespace
import numpy as np
import pytest
from test_bags_reader import image_msg, malformed_frames, write_robot_bag
from tiny_models import CITYSCAPES_CLASSES, make_tiny_onnx

from seg_kd_ros.backends import create_backend
from seg_kd_train.bags.bag_eval import EvalOptions, evaluate_bag
from seg_kd_train.bags.make_bag import write_bag
from seg_kd_train.cli import main as seg_kd
from seg_kd_train.evaluation.metrics import SegmentationEvaluator

pytestmark = pytest.mark.slow
H, W = 48, 64
CONDITIONS = ('fog', 'night', 'rain')


def samples(n_per_condition: int = 4, seed: int = 0, conditions=CONDITIONS,
            sizes: dict | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_per_condition):
        for cond in conditions:
            h, w = (sizes or {}).get(cond, (H, W))
            label = rng.integers(0, 19, (h, w), dtype=np.uint8)
            label[:, :3] = 255
            out.append({'image': rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                        'label': label, 'condition': cond, 'index': i})
    return out


@pytest.fixture(scope='module')
def model(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp('model') / 'tiny.onnx', H, W)


def serve_node(model: Path, tmp_path_factory, **params) -> Iterator[str]:
    """Run a node with `params` for a fixture: yields its namespace, stops it afterwards."""
    namespace = unique_namespace('bags')
    log = tmp_path_factory.mktemp('log') / 'node.log'
    node = NodeProcess(node_args(model, namespace, params), log)
    try:
        node.wait_ready()
        yield namespace
    finally:
        node.stop()


@pytest.fixture(scope='module')
def raw_node(model, tmp_path_factory):
    yield from serve_node(model, tmp_path_factory, confidence_encoding='32FC1')


@pytest.fixture(scope='module')
def compressed_node(model, tmp_path_factory):
    yield from serve_node(model, tmp_path_factory, input_transport='compressed')


def options(ns: str, **kw) -> EvalOptions:
    return EvalOptions(input_topic=kw.pop('input_topic', f'{ns}/image'),
                       labels_topic=f'{ns}/segmenter/labels',
                       confidence_topic=f'{ns}/segmenter/confidence',
                       class_names_topic=f'{ns}/segmenter/class_names', progress=False,
                       timeout_s=10.0, **kw)


def expected_metrics(model: Path, frames: list[dict], quantise: bool = False) -> dict:
    backend = create_backend(model)
    labels, conf = backend.infer(np.stack([s['image'] for s in frames]))
    backend.close()
    if quantise:  # what the node's mono8 confidence carries
        conf = np.round(conf * 255).astype(np.uint8)
    evaluator = SegmentationEvaluator(19, CITYSCAPES_CLASSES)
    for s, lab, c in zip(frames, labels, conf, strict=True):
        evaluator.update(lab, c, s['label'], s['condition'])
    return evaluator.summary()


def assert_metrics_match(got: dict, want: dict, ece_tol: float) -> None:
    assert set(got) == set(want) == {*CONDITIONS, 'full'}
    for cond in want:
        assert got[cond]['pixels'] == want[cond]['pixels'] > 0
        assert got[cond]['miou'] == pytest.approx(want[cond]['miou'], abs=1e-12)
        for name, v in want[cond]['iou'].items():
            if np.isnan(v):
                assert np.isnan(got[cond]['iou'][name])
            else:
                assert got[cond]['iou'][name] == pytest.approx(v, abs=1e-12)
        assert got[cond]['ece'] == pytest.approx(want[cond]['ece'], abs=ece_tol)


def test_bag_eval_scores_the_node_like_the_backend(raw_node, model, tmp_path):
    frames = samples()
    bag = tmp_path / 'bag'
    write_bag(frames, bag, rate=20.0, progress=False)
    out = tmp_path / 'report'
    summary = evaluate_bag(bag, out, options(raw_node, rate=None, mp4=True, grid=4))

    n = len(frames)
    assert summary['frames'] == {'in_bag': n, 'malformed': 0, 'sent': n, 'answered': n,
                                 'dropped': 0, 'confidence_missing': 0, 'unmatched_outputs': 0}
    assert_metrics_match(summary['metrics'], expected_metrics(model, frames), ece_tol=1e-9)
    lat = summary['latency_ms']
    assert 0 < lat['median'] <= lat['p95'] <= lat['p99'] <= lat['max']
    assert summary['throughput_fps'] > 0
    for name in ('summary.md', 'summary.json', 'latency.png', 'per_class_iou.png',
                 'reliability.png', 'overlays.png', 'overlays.mp4'):
        assert (out / name).stat().st_size > 0, name
    on_disk = json.loads((out / 'summary.json').read_text())
    assert on_disk['frames']['answered'] == n
    assert on_disk['metrics']['full']['miou'] == pytest.approx(summary['metrics']['full']['miou'])
    assert 'fog' in (out / 'summary.md').read_text()
    video = cv2.VideoCapture(str(out / 'overlays.mp4'))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    video.release()


def test_bag_eval_compressed_mono8_confidence(compressed_node, model, tmp_path):
    frames = samples(2, seed=1)
    bag = tmp_path / 'bag'
    write_bag(frames, bag, storage='sqlite3', compressed='png', progress=False)
    summary = evaluate_bag(bag, tmp_path / 'report', options(
        compressed_node, input_topic=f'{compressed_node}/image/compressed', rate=None))
    assert summary['image_type'] == 'compressed'
    assert summary['frames']['answered'] == len(frames)
    # png is lossless, so labels are exact; mono8 confidence moves ECE by < 1/255
    assert_metrics_match(summary['metrics'], expected_metrics(model, frames, quantise=True),
                         ece_tol=1e-6)


def test_bag_eval_skips_malformed_frames_and_finishes(raw_node, tmp_path):
    frames, labels, good = malformed_frames(np.random.default_rng(2))
    # the tiny model wants 48x64; the node resizes these 24x32 frames and back
    bag = tmp_path / 'bag'
    write_robot_bag(bag, frames, labels=labels)
    summary = evaluate_bag(bag, tmp_path / 'report',
                           options(raw_node, image_topic='/front/image', rate=None))
    f = summary['frames']
    assert (f['in_bag'], f['malformed'], f['sent'], f['answered']) == (6, 3, 3, 3)
    assert summary['metrics']['full']['pixels'] == len(good) * 24 * 32
    assert 'step' in (tmp_path / 'report' / 'summary.md').read_text()


def test_bag_eval_without_ground_truth_at_twice_the_recorded_rate(raw_node, tmp_path):
    rng = np.random.default_rng(3)
    bag = tmp_path / 'bag'
    write_robot_bag(bag, [image_msg(10**9 + i * 100_000_000,
                                    rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
                          for i in range(10)], topic='/robot/cam')
    out = tmp_path / 'report'
    summary = evaluate_bag(bag, out, options(raw_node, rate=2.0))
    f = summary['frames']
    assert f['sent'] == 10 and f['answered'] + f['dropped'] == 10 and f['answered'] > 0
    assert summary['metrics'] is None
    assert 0.4 <= summary['play_s'] < 5.0  # 9 gaps of 100 ms at 2x: 0.45 s (loaded CI)
    assert (out / 'overlays.png').exists() and (out / 'latency.png').exists()
    assert not (out / 'per_class_iou.png').exists()
    assert 'No ground truth' in (out / 'summary.md').read_text()


def test_no_node_is_a_clear_error_and_leaves_no_report(tmp_path, capsys):
    bag = tmp_path / 'bag'
    write_bag(samples(1), bag, progress=False)
    ns = unique_namespace('nobody')
    assert seg_kd(['bag-eval', '--bag', str(bag), '--out', str(tmp_path / 'r' / 'report'),
                   '--wait', '1', '--input-topic', f'{ns}/image', '--labels-topic',
                   f'{ns}/labels']) == 2
    err = capsys.readouterr().err
    assert err.startswith('seg-kd bag-eval: error: ') and len(err.strip().splitlines()) == 1
    assert f'nobody subscribes {ns}/image' in err and 'ROS_DOMAIN_ID' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag']  # no report, no r/


@pytest.fixture(scope='module')
def strict_node(model, tmp_path_factory):
    """A node that refuses frames above the model's own size: those go unanswered."""
    yield from serve_node(model, tmp_path_factory, max_input_pixels=H * W)


def test_default_pacing_waits_for_answers_and_counts_unanswered_per_condition(
        strict_node, model, tmp_path, capsys):
    # fog frames fit; night frames are twice as large and the node refuses them
    frames = samples(3, seed=4, conditions=('fog', 'night'), sizes={'night': (2 * H, 2 * W)})
    bag = tmp_path / 'bag'
    write_bag(frames, bag, rate=20.0, progress=False)
    out = tmp_path / 'report'
    out.mkdir()  # a previous report: replaced whole, its video does not survive
    (out / 'summary.json').write_text('{}')
    (out / 'overlays.mp4').write_bytes(b'old')
    ns = strict_node
    assert seg_kd(['bag-eval', '--bag', str(bag), '--out', str(out), '--timeout', '1',
                   '--input-topic', f'{ns}/image', '--labels-topic', f'{ns}/segmenter/labels',
                   '--confidence-topic', f'{ns}/segmenter/confidence', '--class-names-topic',
                   f'{ns}/segmenter/class_names', '--no-progress']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['rate'] == 'next frame once answered (closed loop)'
    assert summary['frames_by_condition'] == {
        'fog': {'sent': 3, 'answered': 3, 'unanswered': 0},
        'night': {'sent': 3, 'answered': 0, 'unanswered': 3}}
    assert set(summary['metrics']) == {'fog', 'full'}  # night has nothing scored ...
    fog = [f for f in frames if f['condition'] == 'fog']
    assert summary['metrics']['fog']['miou'] == pytest.approx(
        expected_metrics(model, fog, quantise=True)['fog']['miou'], abs=1e-12)
    report = (out / 'summary.md').read_text()  # ... and the summary says so beside it
    assert '**3 of 6 frames went unanswered** (night 3)' in report
    assert '| night | 3 | 0 | 3 | none scored |' in report
    assert '| fog | 3 | 3 | 0 |' in report
    assert not (out / 'overlays.mp4').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no staging left
    capsys.readouterr()


def test_fixed_rate_max_sends_back_to_back(raw_node, tmp_path):
    frames = samples(4, seed=5)
    bag = tmp_path / 'bag'
    write_bag(frames, bag, rate=1.0, progress=False)  # 1 s apart in the bag
    summary = evaluate_bag(bag, tmp_path / 'report', options(raw_node, rate=math.inf))
    f = summary['frames']
    assert summary['rate'] == 'max (fixed: back to back, no waiting)'
    assert f['sent'] == len(frames) and f['answered'] + f['dropped'] == len(frames)
    assert summary['play_s'] < 5.0  # not the bag's 11 s
    counts = summary['frames_by_condition']
    assert sum(c['answered'] for c in counts.values()) == f['answered']
    assert sum(c['unanswered'] for c in counts.values()) == f['dropped']
