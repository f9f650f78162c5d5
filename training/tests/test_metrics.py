"""Streaming metrics against hand-computed cases and against torchmetrics on random data."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    multiclass_calibration_error,
    multiclass_jaccard_index,
)

from seg_kd_train.evaluation.metrics import CalibrationBins, ConfusionMatrix, SegmentationEvaluator


def test_hand_computed_iou_with_ignore_and_absent_class():
    # 4 classes; class 3 appears nowhere; one ignored pixel predicted as 2
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(pred, label)
    # class 0: TP 2 (0,0),(1,3); FN 1 (0,1 predicted 1); FP 1 (1,1 predicted 0) -> 2/4
    # class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2; class 3: NaN
    iou = cm.iou()
    assert iou[:3] == pytest.approx([0.5, 2 / 3, 0.5])
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert cm.total == 7
    assert cm.matrix.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_class_only_predicted_has_zero_iou_and_out_of_range_prediction_is_a_miss():
    cm = ConfusionMatrix(3)
    cm.update(np.array([2, 255, 0]), np.array([0, 0, 0]))
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 3)  # TP 1, FN 2 (one to class 2, one to 'no class')
    assert math.isnan(iou[1]) and iou[2] == 0.0
    assert cm.pixel_accuracy() == pytest.approx(1 / 3)


def test_streaming_equals_one_shot_and_accepts_tensors():
    rng = np.random.default_rng(0)
    pred, label = rng.integers(0, 5, (6, 20, 30)), rng.integers(0, 5, (6, 20, 30))
    one, many = ConfusionMatrix(5), ConfusionMatrix(5)
    one.update(pred, label)
    for p, lab in zip(pred, label, strict=True):
        many.update(torch.from_numpy(p), torch.from_numpy(lab))
    assert (one.matrix == many.matrix).all()
    with pytest.raises(ValueError, match='shape'):
        one.update(pred[0], label[0, :10])


@pytest.mark.parametrize('seed', range(3))
def test_iou_matches_torchmetrics_with_ignore_and_absent_classes(seed):
    rng = np.random.default_rng(seed)
    c = 19
    label = rng.integers(0, c, (4, 64, 96))
    label[rng.random(label.shape) < 0.2] = 255
    label[label == 4] = 255  # class 4 absent from the ground truth
    pred = np.where(rng.random(label.shape) < 0.6, label, rng.integers(0, c, label.shape))
    pred[pred == 255] = 0
    pred[pred == 9] = 3  # class 9 never predicted
    label[label == 9] = 10  # ... and absent from the ground truth: NaN
    cm = ConfusionMatrix(c)
    cm.update(pred, label)
    ref = multiclass_jaccard_index(torch.from_numpy(pred), torch.from_numpy(label), c,
                                   average='none', ignore_index=255).numpy()
    ours = cm.iou()
    assert math.isnan(ours[9]) and ours[4] == 0.0
    present = ~np.isnan(ours)
    assert np.allclose(ours[present], ref[present], atol=1e-6)
    assert cm.miou() == pytest.approx(ref[present].mean(), abs=1e-6)


def test_calibration_hand_computed():
    bins = CalibrationBins(n_bins=15)
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.5, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0], bool)
    bins.update(conf, correct)
    # bin of 0.95: acc 0.75, conf 0.95 (4 px); bin of 0.5: acc 0.5, conf 0.5 (2 px)
    assert bins.ece() == pytest.approx(4 / 6 * 0.2)
    rel = bins.reliability()
    assert rel['count'].sum() == 6 and len(rel['bin_edges']) == 16
    b = int(0.95 * 15)
    assert rel['accuracy'][b] == pytest.approx(0.75)
    assert rel['confidence'][b] == pytest.approx(0.95)
    assert np.isnan(rel['accuracy'][0])
    assert math.isnan(CalibrationBins().ece())


@pytest.mark.parametrize('seed', range(3))
def test_ece_matches_torchmetrics_on_valid_pixels(seed):
    torch.manual_seed(seed)
    c = 7
    logits = torch.randn(3, c, 32, 48) * 2.5
    label = torch.randint(0, c, (3, 32, 48))
    label[torch.rand(label.shape) < 0.25] = 255
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    ref = multiclass_calibration_error(probs, label, c, n_bins=15, norm='l1', ignore_index=255)
    ev = SegmentationEvaluator(c)
    for i in range(3):  # streamed one frame at a time
        ev.update(pred[i], conf[i], label[i], 'fog')
    assert ev.summary()['full']['ece'] == pytest.approx(ref.item(), abs=1e-5)


def test_evaluator_per_condition_and_pooled():
    names = ['a', 'b', 'c']
    ev = SegmentationEvaluator(3, names)
    lab_fog = np.array([[0, 0], [1, 1]])
    lab_night = np.array([[2, 2], [255, 1]])
    ev.update(lab_fog, np.full((2, 2), 0.9), lab_fog, 'fog')  # perfect
    ev.update(np.array([[2, 0], [0, 1]]), np.full((2, 2), 0.6), lab_night, 'night')
    out = ev.summary()
    assert list(out) == ['fog', 'night', 'full']
    assert out['fog']['miou'] == pytest.approx(1.0)
    assert math.isnan(out['fog']['iou']['c'])
    assert out['night']['iou'] == pytest.approx({'a': 0.0, 'b': 1.0, 'c': 0.5}, nan_ok=True)
    # pooled matrix: a: TP 2 FP 1; b: TP 3; c: TP 1 FN 1 -> (2/3 + 1 + 1/2) / 3
    assert out['full']['miou'] == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert out['full']['pixels'] == 7 and out['night']['pixel_accuracy'] == pytest.approx(2 / 3)
    assert out['fog']['ece'] == pytest.approx(0.1)


def test_evaluator_batches_with_one_condition_per_sample():
    ev = SegmentationEvaluator(2)
    lab = np.zeros((2, 4, 4), int)
    ev.update(lab, None, lab, ['rain', 'snow'])
    out = ev.summary()
    assert out['rain']['pixels'] == out['snow']['pixels'] == 16 and out['full']['pixels'] == 32
    assert math.isnan(out['full']['ece'])  # no confidence given
    with pytest.raises(ValueError, match='conditions'):
        ev.update(lab, None, lab, ['rain'])
    with pytest.raises(ValueError, match='reserved'):
        ev.update(lab[0], None, lab[0], 'full')


def test_full_resolution_frame_is_cheap():
    import time

    rng = np.random.default_rng(0)
    label = rng.integers(0, 19, (1024, 2048), dtype=np.uint8)
    pred = rng.integers(0, 19, (1024, 2048), dtype=np.uint8)
    conf = rng.random((1024, 2048), dtype=np.float32)
    ev = SegmentationEvaluator(19)
    start = time.perf_counter()
    ev.update(pred, conf, label, 'fog')
    assert time.perf_counter() - start < 2.0  # ~0.1 s measured; generous for a loaded machine
    assert ev.summary()['full']['pixels'] == 1024 * 2048
