"""The one report module: tables, strict JSON and plots, for `seg-kd eval` and for bag-eval."""

import json
import math

import cv2
import numpy as np

from seg_kd_ros.postprocess import PaletteTable
from seg_kd_train.bags.report import OverlayVideo
from seg_kd_train.bags.report import write_report as write_bag_report
from seg_kd_train.data.cityscapes_labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from seg_kd_train.evaluation.metrics import SegmentationEvaluator
from seg_kd_train.evaluation.report import metrics_markdown, to_json, write_report

H, W = 24, 32


def scored(conditions=('fog', 'night')):
    """An evaluator summary and samples over random frames, as `evaluate` returns them."""
    rng = np.random.default_rng(0)
    evaluator = SegmentationEvaluator(19, CITYSCAPES_CLASSES)
    samples = []
    for cond in conditions:
        label = rng.integers(0, 4, (H, W)).astype(np.uint8)
        label[0] = 255
        pred = np.where(rng.random((H, W)) < 0.7, label % 19, 5).astype(np.uint8)
        conf = rng.uniform(0.3, 1.0, (H, W)).astype(np.float32)
        evaluator.update(pred, conf, label, cond)
        samples.append({'condition': cond, 'image': rng.integers(0, 256, (H, W, 3), np.uint8),
                        'label': label, 'pred': pred, 'confidence': conf})
    summary = evaluator.summary()
    summary['_reliability'] = {n: evaluator.calibration[n].reliability()
                               for n in evaluator.calibration}
    return summary, samples


def test_eval_report_writes_tables_strict_json_and_plots(tmp_path):
    summary, samples = scored()
    report = write_report(summary, samples, tmp_path / 'out', 'Evaluation: test',
                          list(CITYSCAPES_PALETTE), ['Model: tiny.'])
    text = report.read_text()
    assert text.startswith('# Evaluation: test') and 'Model: tiny.' in text
    assert '| full |' in text and '| fog |' in text and '| road |' in text
    assert '| bicycle | n/a | n/a | n/a |' in text  # absent everywhere: NaN, shown as n/a
    for png in ('per_class_iou.png', 'reliability.png', 'overlays.png'):
        assert f']({png})' in text
        assert cv2.imread(str(tmp_path / 'out' / png)) is not None, png
    raw = (tmp_path / 'out' / 'metrics.json').read_text()
    assert 'NaN' not in raw  # strict JSON: NaN written as null
    metrics = json.loads(raw)
    assert set(metrics) == {'fog', 'night', 'full'}
    assert metrics['full']['iou']['bicycle'] is None
    assert metrics['full']['miou'] == summary['full']['miou']


def test_eval_report_without_a_palette_draws_no_overlays(tmp_path):
    summary, samples = scored(('rain',))
    text = write_report(summary, samples, tmp_path, 'no colours').read_text()
    assert 'overlays.png' not in text and not (tmp_path / 'overlays.png').exists()


def test_metric_tables_and_json_cleaning():
    summary, _ = scored(('snow',))
    lines = metrics_markdown(summary)
    assert lines[0] == '| condition | mIoU (%) | pixel acc. (%) | ECE | pixels |'
    assert sum(line.startswith('| snow |') for line in lines) == 1
    assert to_json({'a': np.float32('nan'), 'b': [np.int64(3), math.inf], 'c': np.ones(2)}) == {
        'a': None, 'b': [3, None], 'c': [1.0, 1.0]}


def test_bag_report_uses_the_shared_tables_and_plots(tmp_path):
    summary, samples = scored()
    palette = PaletteTable(CITYSCAPES_PALETTE)
    bag_summary = {
        'bag': 'demo', 'image_topic': '/cam', 'image_type': 'raw', 'input_topic': '/image',
        'labels_topic': '/segmenter/labels', 'confidence_topic': '/segmenter/confidence',
        'rate': 'max', 'frames': {'in_bag': 2, 'malformed': 0, 'sent': 2, 'answered': 2,
                                  'dropped': 0, 'confidence_missing': 0},
        'latency_ms': {'median': 10.0, 'p95': 12.0, 'p99': 12.0, 'max': 12.0},
        'throughput_fps': 50.0, 'metrics': {k: v for k, v in summary.items()
                                            if not k.startswith('_')}, 'files': []}
    grid = [{'rgb': s['image'], 'pred': s['pred'], 'gt': s['label'], 'index': i,
             'condition': s['condition'], 'latency_ms': 10.0} for i, s in enumerate(samples)]
    write_bag_report(tmp_path, bag_summary, summary['_reliability']['full'], [0.0, 0.05],
                     [10.0, 12.0], grid, palette)
    text = (tmp_path / 'summary.md').read_text()
    assert '# bag-eval: demo' in text and '| condition | mIoU (%)' in text and '| fog |' in text
    assert bag_summary['files'] == ['summary.md', 'summary.json', 'latency.png', 'overlays.png',
                                    'per_class_iou.png', 'reliability.png']
    for name in bag_summary['files']:
        assert (tmp_path / name).stat().st_size > 0, name
    no_gt = dict(bag_summary, metrics=None, files=[])
    (tmp_path / 'x').mkdir()
    write_bag_report(tmp_path / 'x', no_gt, None, [], [], [], palette)
    assert 'No ground truth' in (tmp_path / 'x' / 'summary.md').read_text()
    assert not (tmp_path / 'x' / 'per_class_iou.png').exists()


def test_overlay_video_blends_with_the_runtime_palette(tmp_path):
    palette = PaletteTable(CITYSCAPES_PALETTE)
    video = OverlayVideo(tmp_path / 'v.mp4', 5.0, palette)
    rgb = np.full((H, W, 3), 100, np.uint8)
    for _ in range(3):
        video.add(rgb, np.zeros((H, W), np.uint8))
    video.close()
    capture = cv2.VideoCapture(str(tmp_path / 'v.mp4'))
    ok, frame = capture.read()
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert ok and count == 3
    expected = palette.overlay(rgb, np.zeros((H, W), np.uint8), 0.6)[H // 2, W // 2]
    got = frame[H // 2, W // 2, ::-1].astype(int)  # BGR on disk; mp4v is lossy
    assert np.abs(got - expected).max() < 20
