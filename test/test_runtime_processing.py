"""Pre-processing (resize) and post-processing (resize, threshold, colour, overlay).

Normalisation is inside the model file's graph (format 2): see test_runtime_onnxruntime.py.
"""

import cv2
import numpy as np
import pytest
from tiny_models import CITYSCAPES_PALETTE

from seg_kd_ros.postprocess import (
    IGNORE_INDEX,
    PaletteTable,
    apply_threshold,
    confidence_to_mono8,
    resize_labels,
    resize_outputs,
)
from seg_kd_ros.preprocessing import resize_to_network


def rng_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_resize_to_network():
    rgb = rng_images((48, 80, 3))
    assert resize_to_network(rgb, (48, 80)) is rgb
    out = resize_to_network(rgb, (24, 40))
    assert out.shape == (24, 40, 3)
    np.testing.assert_array_equal(out, cv2.resize(rgb, (40, 24), interpolation=cv2.INTER_LINEAR))


def test_resize_outputs_nearest_labels_bilinear_confidence():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    confidence = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    big_l, big_c = resize_outputs(labels, confidence, (4, 6))
    assert big_l.shape == big_c.shape == (4, 6) and big_l.dtype == np.uint8
    assert big_c.dtype == np.float32
    np.testing.assert_array_equal(big_l, np.repeat(np.repeat(labels, 2, 0), 3, 1))
    assert set(np.unique(big_l)) == {0, 1, 2, 3}  # nearest: no new values
    assert 0.0 < big_c[0, 2] < 1.0 and big_c[0, 0] == 0.0 and big_c[0, 5] == 1.0
    same_l, same_c = resize_outputs(labels, confidence, (2, 2))
    assert same_l is labels and same_c is confidence


def test_resize_outputs_rejects_mismatch():
    with pytest.raises(ValueError, match='same HxW shape'):
        resize_outputs(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.float32), (4, 4))


def test_threshold_and_mono8():
    labels = np.array([[1, 2, 3]], np.uint8)
    confidence = np.array([[0.2, 0.5, 0.9]], np.float32)
    np.testing.assert_array_equal(apply_threshold(labels, confidence, 0.5), [[255, 2, 3]])
    assert apply_threshold(labels, confidence, 0.0) is labels
    np.testing.assert_array_equal(labels, [[1, 2, 3]])  # input untouched
    mono = confidence_to_mono8(np.array([0.0, 0.5, 1.0, 1.2, -0.1, 0.999], np.float32))
    np.testing.assert_array_equal(mono, [0, 128, 255, 255, 0, 255])
    assert mono.dtype == np.uint8


def test_colorize_and_unknown_labels_are_black():
    labels = np.array([[0, 18], [IGNORE_INDEX, 19]], np.uint8)
    table = PaletteTable(CITYSCAPES_PALETTE)
    assert table.lut.shape == (256, 3) and table.num_colours == 19
    colours = table.colorize(labels)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours[0, 0], CITYSCAPES_PALETTE[0])
    np.testing.assert_array_equal(colours[0, 1], CITYSCAPES_PALETTE[18])
    np.testing.assert_array_equal(colours[1], 0)


@pytest.mark.parametrize('palette', [[[0, 0]], [[0, 0, 300]], [[1, 2, 3]] * 257])
def test_bad_palettes(palette):
    with pytest.raises(ValueError, match='palette'):
        PaletteTable(palette)


def test_blend_overlay():
    rgb = rng_images((6, 5, 3), seed=3)
    labels = np.full((6, 5), 13, np.uint8)
    labels[0] = IGNORE_INDEX
    labels[1, 0] = 19  # a value past the palette: no colour either
    table = PaletteTable(CITYSCAPES_PALETTE)
    out = table.overlay(rgb, labels, 0.25)
    expected = 0.75 * rgb[2:] + 0.25 * np.array(CITYSCAPES_PALETTE[13])
    assert np.abs(out[2:].astype(float) - expected).max() <= 1.0
    np.testing.assert_array_equal(out[0], rgb[0])  # no class: the image shows through
    np.testing.assert_array_equal(out[1, 0], rgb[1, 0])
    np.testing.assert_array_equal(table.overlay(rgb, labels, 0.0), rgb)
    strided = np.zeros((6, 10, 3), np.uint8)[:, ::2]  # a view, as a decoder may give
    strided[...] = rgb
    np.testing.assert_array_equal(table.overlay(strided, labels, 0.25), out)
    with pytest.raises(ValueError, match='same size'):
        table.overlay(rgb, labels[:3], 0.5)
    with pytest.raises(ValueError, match='alpha'):
        table.overlay(rgb, labels, 1.5)


def onnx_nearest_exact(labels: np.ndarray, size) -> np.ndarray:
    """ONNX Runtime's Resize(nearest, half_pixel, round_prefer_ceil): the in-graph convention."""
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime as ort

    graph = helper.make_graph(
        [helper.make_node('Resize', ['x', '', '', 'size'], ['y'], mode='nearest',
                          coordinate_transformation_mode='half_pixel',
                          nearest_mode='round_prefer_ceil')], 'nearest_exact',
        [helper.make_tensor_value_info('x', TensorProto.UINT8, list(labels.shape))],
        [helper.make_tensor_value_info('y', TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.array(size, np.int64), 'size')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {'x': labels})[0]


@pytest.mark.parametrize('source, target', [((64, 128), (135, 240)), ((64, 128), (128, 256)),
                                            ((135, 240), (64, 128)), ((7, 5), (3, 2)),
                                            ((3, 2), (7, 5)), ((512, 1024), (1080, 1920))])
def test_resize_labels_is_nearest_exact(source, target):
    labels = rng_images(source)
    out = resize_labels(labels, target)
    assert out.shape == target and out.dtype == np.uint8
    rows = np.minimum(np.floor((np.arange(target[0]) + 0.5) * source[0] / target[0]),
                      source[0] - 1).astype(int)
    cols = np.minimum(np.floor((np.arange(target[1]) + 0.5) * source[1] / target[1]),
                      source[1] - 1).astype(int)
    np.testing.assert_array_equal(out, labels[rows][:, cols])  # the formula
    np.testing.assert_array_equal(out, onnx_nearest_exact(labels, target))  # ONNX's Resize
    assert resize_labels(labels, source) is labels


def test_resize_labels_2x_round_trip_and_errors():
    labels = rng_images((6, 10))
    np.testing.assert_array_equal(resize_labels(resize_labels(labels, (12, 20)), (6, 10)), labels)
    rgb = rng_images((4, 6, 3))
    assert resize_labels(rgb, (8, 12)).shape == (8, 12, 3)
    with pytest.raises(ValueError, match='cannot resize labels'):
        resize_labels(labels, (0, 4))
