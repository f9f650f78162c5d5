"""Every camera encoding to RGB, against OpenCV on the same bytes: padded rows, both byte orders
for 16 bits, Bayer patterns and YUV layouts checked by what they mean, malformed forms named.

Messages are built here byte by byte (not with numpy_to_imgmsg), and the expected RGB is computed
here with cv2.cvtColor from a table of the test's own, so a wrong entry in the runtime's table
shows up as a mismatch.
"""

import array

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from seg_kd_ros.image_conversion import CAMERA_ENCODINGS, ImageConversionError, imgmsg_to_rgb

H, W = 10, 14
PATTERNS = ('rggb', 'bggr', 'gbrg', 'grbg')
# sensor_msgs encoding -> (channels, cv2 code to RGB or None): the test's own reading of the spec
PACKED = {
    'rgb8': (3, None), 'bgr8': (3, cv2.COLOR_BGR2RGB), 'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB), 'mono8': (1, cv2.COLOR_GRAY2RGB),
    '8UC1': (1, cv2.COLOR_GRAY2RGB), '8UC3': (3, cv2.COLOR_BGR2RGB),
    '8UC4': (4, cv2.COLOR_BGRA2RGB),
    'rgb16': (3, None), 'bgr16': (3, cv2.COLOR_BGR2RGB), 'rgba16': (4, cv2.COLOR_RGBA2RGB),
    'bgra16': (4, cv2.COLOR_BGRA2RGB), 'mono16': (1, cv2.COLOR_GRAY2RGB),
    # OpenCV's sensor-order names (BayerRGGB...), not the classic ones the runtime uses
    **{f'bayer_{p}{bits}': (1, getattr(cv2, f'COLOR_Bayer{p.upper()}2RGB'))
       for p in PATTERNS for bits in (8, 16)},
    'uyvy': (2, cv2.COLOR_YUV2RGB_UYVY), 'yuv422': (2, cv2.COLOR_YUV2RGB_UYVY),
    'yuyv': (2, cv2.COLOR_YUV2RGB_YUY2), 'yuv422_yuy2': (2, cv2.COLOR_YUV2RGB_YUY2),
}


def message(rows: np.ndarray, encoding: str, height: int, width: int, step: int,
            big_endian: bool = False) -> Image:
    """An Image whose rows are `rows` (one uint8 row of bytes each), padded with 0xAB to `step`."""
    padded = np.full((rows.shape[0], step), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    return Image(height=height, width=width, encoding=encoding, step=step,
                 is_bigendian=int(big_endian), data=array.array('B', padded.tobytes()))


def samples(encoding: str, seed: int = 0) -> np.ndarray:
    channels, _ = PACKED[encoding]
    dtype = np.uint16 if encoding.endswith('16') else np.uint8
    shape = (H, W) if channels == 1 else (H, W, channels)
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype, True)


def scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """cv_bridge's 16 -> 8 bit conversion: x * 255 / 65535, rounded (here in float64)."""
    return np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)


def test_every_encoding_of_the_spec_is_supported():
    assert set(CAMERA_ENCODINGS) == set(PACKED) | {'nv12', 'nv21', 'nv24'}


@pytest.mark.parametrize('encoding', sorted(PACKED))
@pytest.mark.parametrize('padding', [0, 3, 64])
@pytest.mark.parametrize('big_endian', [False, True])
def test_packed_encodings_match_opencv_on_the_same_bytes(encoding, padding, big_endian):
    pixels = samples(encoding, seed=padding)
    order = '>' if big_endian else '<'
    rows = pixels.astype(pixels.dtype.newbyteorder(order)).reshape(H, -1).view(np.uint8)
    msg = message(rows, encoding, H, W, rows.shape[1] + padding, big_endian)
    _, code = PACKED[encoding]
    expected = pixels if code is None else cv2.cvtColor(pixels, code)
    if pixels.dtype == np.uint16:
        expected = scale_16_to_8(expected)
    out = imgmsg_to_rgb(msg)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('pattern', PATTERNS)
@pytest.mark.parametrize('bits', [8, 16])
def test_bayer_patterns_demosaic_a_flat_colour_to_itself(pattern, bits):
    """A mosaic of a flat colour, laid out as the pattern's name says, demosaics to that colour."""
    colour = {'r': 200, 'g': 120, 'b': 40}
    scale = 257 if bits == 16 else 1  # 16 bits: full-scale values that scale back exactly
    mosaic = np.empty((H, W), np.uint16 if bits == 16 else np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            mosaic[dy::2, dx::2] = colour[pattern[2 * dy + dx]] * scale
    rows = mosaic.astype(mosaic.dtype.newbyteorder('<')).view(np.uint8)
    out = imgmsg_to_rgb(message(rows, f'bayer_{pattern}{bits}', H, W, rows.shape[1] + 4))
    expected = np.broadcast_to(np.array([200, 120, 40], np.uint8), (H - 4, W - 4, 3))
    np.testing.assert_array_equal(out[2:-2, 2:-2], expected)


@pytest.mark.parametrize('encoding, y_first', [('uyvy', False), ('yuv422', False),
                                                ('yuyv', True), ('yuv422_yuy2', True)])
def test_422_byte_order_means_what_its_name_says(encoding, y_first):
    """Neutral chroma (128) and a luma ramp: grey output that follows the ramp."""
    luma = np.tile(np.linspace(16, 235, W).astype(np.uint8), (H, 1))
    pairs = np.empty((H, W, 2), np.uint8)
    pairs[:, :, 0 if y_first else 1] = luma
    pairs[:, :, 1 if y_first else 0] = 128
    out = imgmsg_to_rgb(message(pairs.reshape(H, -1), encoding, H, W, 2 * W + 2)).astype(int)
    assert np.abs(out[:, :, 0] - out[:, :, 1]).max() <= 1
    assert np.abs(out[:, :, 2] - out[:, :, 1]).max() <= 1
    assert (np.diff(out[0, :, 1]) >= 0).all() and out[0, 0, 1] <= 1 and out[0, -1, 1] >= 254


def nv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (HxW) and half-resolution U and V (H/2 x W/2) of an RGB image (OpenCV's BT.601)."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    quarter = height * width // 4
    chroma = i420[height:].reshape(-1)
    return (i420[:height], chroma[:quarter].reshape(height // 2, width // 2),
            chroma[quarter:].reshape(height // 2, width // 2))


def blocky_rgb() -> np.ndarray:
    """Random colours, each flat over a 2x2 block, so 4:2:0 subsampling loses nothing."""
    blocks = np.random.default_rng(7).integers(30, 220, (H // 2, W // 2, 3), np.uint8)
    return blocks.repeat(2, axis=0).repeat(2, axis=1)


@pytest.mark.parametrize('encoding, v_first', [('nv12', False), ('nv21', True)])
@pytest.mark.parametrize('padding', [0, 5])
def test_nv_420_matches_opencv_and_the_source_colours(encoding, v_first, padding):
    rgb = blocky_rgb()
    luma, u, v = nv_planes(rgb)
    chroma = np.dstack([v, u] if v_first else [u, v]).reshape(H // 2, W)
    planes = np.vstack([luma, chroma])
    msg = message(planes, encoding, H, W, W + padding)
    out = imgmsg_to_rgb(msg)
    code = cv2.COLOR_YUV2RGB_NV21 if v_first else cv2.COLOR_YUV2RGB_NV12
    np.testing.assert_array_equal(out, cv2.cvtColor(planes, code))
    assert np.abs(out.astype(int) - rgb).max() <= 3  # the source colours, up to rounding


@pytest.mark.parametrize('padding', [0, 5])
def test_nv24_matches_nv12_when_chroma_is_constant_over_2x2(padding):
    """nv24 holds U V for every pixel; with the same U V on each 2x2 block it must decode to the
    same RGB as the nv12 of those planes (OpenCV's BT.601 conversion)."""
    luma, u, v = nv_planes(blocky_rgb())
    full_uv = np.dstack([u, v]).repeat(2, axis=0).repeat(2, axis=1).reshape(H, 2 * W)
    step = W + padding
    padded_uv = np.full((H, 2 * step), 0xCD, np.uint8)  # V4L2: chroma rows are 2 x step bytes
    padded_uv[:, :2 * W] = full_uv
    data = np.vstack([np.pad(luma, ((0, 0), (0, padding)), constant_values=0xAB),
                      padded_uv.reshape(2 * H, step)])
    msg = message(data, 'nv24', H, W, step)
    nv12 = np.vstack([luma, np.dstack([u, v]).reshape(H // 2, W)])
    np.testing.assert_array_equal(imgmsg_to_rgb(msg), cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12))


def test_nv24_accepts_odd_sizes():
    """4:4:4 has no subsampling, so an odd width or height is a valid frame."""
    msg = message(np.full((3 * 5, 7), 128, np.uint8), 'nv24', 5, 7, 7)
    out = imgmsg_to_rgb(msg)
    assert out.shape == (5, 7, 3) and np.ptp(out) == 0


def test_rgb8_is_still_a_view_and_depth_is_named():
    rows = np.zeros((2, 12), np.uint8)
    msg = message(rows, 'rgb8', 2, 4, 12)
    assert np.shares_memory(imgmsg_to_rgb(msg), np.frombuffer(msg.data, np.uint8))
    with pytest.raises(ImageConversionError, match="'16UC1' for a camera image .*depth image"):
        imgmsg_to_rgb(message(rows, '16UC1', 2, 4, 12))


def bad(encoding, height, width, step, data_len):
    return Image(height=height, width=width, encoding=encoding, step=step,
                 data=array.array('B', bytes(data_len)))


@pytest.mark.parametrize('msg, match', [
    (bad('uyvy', 4, 7, 14, 56), r"'uyvy' is YUV 4:2:2 .*width must be even, got 7"),
    (bad('yuv422_yuy2', 4, 7, 14, 56), r"'yuv422_yuy2' is YUV 4:2:2 .*width must be even"),
    (bad('nv12', 4, 7, 7, 42), r"'nv12' is YUV 4:2:0 .*must be even, got 7x4"),
    (bad('nv21', 5, 8, 8, 60), r"'nv21' is YUV 4:2:0 .*must be even, got 8x5"),
    (bad('bayer_rggb16', 4, 8, 15, 60), r'step 15 is smaller than one row \(8 px x 1 ch x 2 B'),
    (bad('uyvy', 4, 8, 12, 64), 'step 12 is smaller than one row'),
    (bad('nv12', 4, 8, 6, 48), r'step 6 is smaller than one row of the Y plane \(8 B\)'),
    (bad('bayer_grbg8', 4, 8, 8, 31), r'data has 31 bytes, fewer than step x height = 8 x 4'),
    (bad('nv12', 4, 8, 8, 32), r"data has 32 bytes, fewer than the Y and chroma planes of "
                               r"'nv12' \(8 x 4 \+ 8 x 2\) = 48"),
    (bad('nv24', 4, 8, 8, 80), r"fewer than the Y and chroma planes of 'nv24' \(8 x 4 \+ 16 x 4"),
    (bad('rgb16', 4, 8, 48, 191), 'fewer than step x height = 48 x 4 = 192'),
    (bad('bayer_bggr8', 0, 8, 8, 0), 'zero size'),
    (bad('nv21', 4, 0, 0, 0), 'zero size'),
    (bad('yuv420', 4, 8, 12, 48), r"unsupported encoding 'yuv420' .*supported: rgb8, .*"
                                  r"bayer_rggb8, .*yuv422_yuy2, nv12, nv21, nv24"),
    (bad('Bayer_RGGB8', 4, 8, 8, 32), "unsupported encoding 'Bayer_RGGB8'"),
])
def test_malformed_frames_raise_errors_that_name_the_problem(msg, match):
    with pytest.raises(ImageConversionError, match=match):
        imgmsg_to_rgb(msg)


def test_max_pixels_is_checked_before_the_data():
    msg = bad('bayer_rggb8', 3000, 4000, 4000, 0)  # no data at all: the size check comes first
    with pytest.raises(ImageConversionError, match=r'3000 \(12000000 px\).*max_input_pixels=100'):
        imgmsg_to_rgb(msg, max_pixels=100)
    with pytest.raises(ImageConversionError, match='fewer than step x height'):
        imgmsg_to_rgb(msg, max_pixels=12_000_000)
