"""Pre-processing (resize, normalise) and post-processing (resize, threshold, colour, overlay)."""

import cv2
import numpy as np
import pytest
from tiny_models import CITYSCAPES_PALETTE, IMAGENET_MEAN, IMAGENET_STD

from seg_kd_ros.postprocess import (
    IGNORE_INDEX,
    PaletteTable,
    apply_threshold,
    confidence_to_mono8,
    resize_outputs,
)
from seg_kd_ros.preprocessing import normalise, resize_to_network


def rng_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_normalise_matches_formula_and_layout():
    images = rng_images((2, 5, 7, 3))
    out = normalise(images, IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == (2, 3, 5, 7) and out.dtype == np.float32 and out.flags.c_contiguous
    expected = ((images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD))
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), rtol=0, atol=1e-6)
    # every byte value through every channel: the table is exact up to float32 rounding
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)[None]
    out = normalise(ramp, [0.1, 0.5, 0.9], [0.3, 0.2, 0.1])
    ref = (np.arange(256) / 255.0 - np.array([[0.1], [0.5], [0.9]])) / np.array([[0.3], [0.2],
                                                                                   [0.1]])
    np.testing.assert_array_equal(out[0, :, 0, :], ref.astype(np.float32))


def test_normalise_accepts_one_image_and_strided_input():
    images = rng_images((1, 6, 8, 4))
    strided = images[..., :3]  # an rgba buffer viewed as rgb
    np.testing.assert_array_equal(normalise(strided, IMAGENET_MEAN, IMAGENET_STD),
                                  normalise(strided.copy(), IMAGENET_MEAN, IMAGENET_STD))
    assert normalise(strided[0], IMAGENET_MEAN, IMAGENET_STD).shape == (1, 3, 6, 8)


@pytest.mark.parametrize('images', [np.zeros((1, 4, 4, 3), np.float32),
                                    np.zeros((1, 4, 4), np.uint8),
                                    np.zeros((1, 4, 4, 1), np.uint8)])
def test_normalise_rejects_bad_input(images):
    with pytest.raises(ValueError, match='uint8 \\[N, H, W, 3\\]'):
        normalise(images, IMAGENET_MEAN, IMAGENET_STD)


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
