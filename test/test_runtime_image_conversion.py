"""sensor_msgs/Image and CompressedImage <-> numpy: round trips, padding, byte order, bad input."""

import array
import sys

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from seg_kd_ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    imgmsg_to_numpy,
    imgmsg_to_rgb,
    numpy_to_imgmsg,
)

SIZES = [(1, 1), (1, 7), (5, 1), (3, 5), (17, 31), (64, 129)]


def random_image(encoding: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == 'f':
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def message(pixels: np.ndarray, encoding: str, step: int, big_endian: bool) -> Image:
    """Build a message by hand (not with numpy_to_imgmsg) with `step` bytes per row."""
    height, width = pixels.shape[:2]
    order = '>' if big_endian else '<'
    raw = pixels.astype(pixels.dtype.newbyteorder(order)).reshape(height, -1).view(np.uint8)
    padded = np.full((height, step), 0xAB, np.uint8)
    padded[:, :raw.shape[1]] = raw
    return Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                 step=step, data=array.array('B', padded.tobytes()))


def data_array(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
@pytest.mark.parametrize('size', SIZES)
def test_round_trip_every_encoding_and_size(encoding, size):
    pixels = random_image(encoding, *size)
    msg = numpy_to_imgmsg(pixels, encoding)
    assert (msg.height, msg.width, msg.encoding) == (size[0], size[1], encoding)
    assert msg.step == pixels[0].nbytes
    assert msg.is_bigendian == int(sys.byteorder == 'big')
    back = imgmsg_to_numpy(msg)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)
    assert np.shares_memory(back, data_array(msg)), 'expected a zero-copy view'


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
@pytest.mark.parametrize('padding', [1, 3, 64])
def test_row_padding_is_skipped(encoding, padding):
    pixels = random_image(encoding, 13, 9, seed=1)
    msg = message(pixels, encoding, pixels[0].nbytes + padding, big_endian=sys.byteorder == 'big')
    back = imgmsg_to_numpy(msg)
    np.testing.assert_array_equal(back, pixels)
    assert back.strides[0] == msg.step
    assert np.shares_memory(back, data_array(msg))


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', '32FC1'])
@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 3])
def test_byte_order_is_honoured(encoding, big_endian, padding):
    pixels = random_image(encoding, 6, 11, seed=2)
    msg = message(pixels, encoding, pixels[0].nbytes + padding, big_endian)
    back = imgmsg_to_numpy(msg)
    np.testing.assert_array_equal(back, pixels)
    assert back.dtype.isnative
    same_order = big_endian == (sys.byteorder == 'big')
    assert np.shares_memory(back, data_array(msg)) == same_order


def test_byte_order_flag_is_ignored_for_8_bit():
    pixels = random_image('rgb8', 4, 4)
    msg = message(pixels, 'rgb8', 12, big_endian=True)
    np.testing.assert_array_equal(imgmsg_to_numpy(msg), pixels)
    assert np.shares_memory(imgmsg_to_numpy(msg), data_array(msg))


def test_longer_data_than_needed_is_accepted():
    pixels = random_image('mono8', 4, 5)
    msg = numpy_to_imgmsg(pixels, 'mono8')
    msg.data.extend(b'\x00' * 7)
    np.testing.assert_array_equal(imgmsg_to_numpy(msg), pixels)


@pytest.mark.parametrize('padding', [0, 5])
def test_imgmsg_to_rgb_every_camera_encoding(padding):
    rgb = random_image('rgb8', 15, 21, seed=3)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    grey = rgb[:, :, 1].copy()
    cases = {
        'rgb8': (rgb, rgb),
        'bgr8': (rgb[:, :, ::-1], rgb),
        'rgba8': (rgba, rgb),
        'bgra8': (rgba[:, :, [2, 1, 0, 3]], rgb),
        'mono8': (grey, np.dstack([grey] * 3)),
    }
    for encoding, (pixels, expected) in cases.items():
        msg = message(np.ascontiguousarray(pixels), encoding, pixels[0].nbytes + padding, False)
        out = imgmsg_to_rgb(msg)
        assert out.shape == (15, 21, 3) and out.dtype == np.uint8, encoding
        np.testing.assert_array_equal(out, expected, err_msg=encoding)
    rgb_msg = message(rgb, 'rgb8', rgb[0].nbytes + padding, False)
    assert np.shares_memory(imgmsg_to_rgb(rgb_msg), data_array(rgb_msg))


def test_header_is_kept():
    header = Header(frame_id='camera_optical')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_imgmsg(np.zeros((2, 3), np.uint8), 'mono8', header=header)
    assert msg.header.frame_id == 'camera_optical'
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)


def test_numpy_to_imgmsg_copies_non_contiguous_input():
    pixels = random_image('rgb8', 8, 10)[:, ::2]
    msg = numpy_to_imgmsg(pixels, 'rgb8')
    assert msg.step == 15
    np.testing.assert_array_equal(imgmsg_to_numpy(msg), pixels)


def test_numpy_to_imgmsg_accepts_single_channel_hwc():
    pixels = random_image('mono8', 3, 4)
    np.testing.assert_array_equal(imgmsg_to_numpy(numpy_to_imgmsg(pixels[..., None], 'mono8')),
                                  pixels)


@pytest.mark.parametrize('field, value, match', [
    ('encoding', 'yuv420', "unsupported encoding 'yuv420'"),
    ('encoding', 'nv12', "unsupported encoding 'nv12'"),  # planar: imgmsg_to_rgb reads it
    ('encoding', '', "unsupported encoding ''"),
    ('height', 0, 'zero size'),
    ('width', 0, 'zero size'),
    ('step', 29, 'step 29 is smaller than one row'),
    ('data', array.array('B', bytes(30 * 4 - 1)), 'fewer than step x height'),
    ('data', array.array('B'), 'data has 0 bytes'),
])
def test_bad_messages_raise_clear_errors(field, value, match):
    msg = numpy_to_imgmsg(random_image('rgb8', 4, 10), 'rgb8')
    setattr(msg, field, value)
    with pytest.raises(ImageConversionError, match=match):
        imgmsg_to_numpy(msg)


def test_imgmsg_to_rgb_rejects_non_camera_encodings():
    msg = numpy_to_imgmsg(random_image('32FC1', 4, 4), '32FC1')
    with pytest.raises(ImageConversionError, match="unsupported encoding '32FC1'"):
        imgmsg_to_rgb(msg)
    assert imgmsg_to_numpy(msg).shape == (4, 4)


def test_bad_padding_in_multi_byte_row_is_caught():
    msg = numpy_to_imgmsg(random_image('32FC1', 4, 4), '32FC1')
    msg.step = 15
    with pytest.raises(ImageConversionError, match='step 15 is smaller than one row'):
        imgmsg_to_numpy(msg)


@pytest.mark.parametrize('pixels, encoding, match', [
    (np.zeros((4, 4), np.uint8), 'rgb8', 'needs an HxWx3 array'),
    (np.zeros((4, 4, 3), np.uint8), 'mono8', 'needs an HxW array'),
    (np.zeros((4, 4, 4), np.uint8), 'rgb8', 'needs an HxWx3 array'),
    (np.zeros((4, 4), np.float64), '32FC1', 'needs dtype float32, got float64'),
    (np.zeros((4, 4), np.int16), 'mono16', 'needs dtype uint16, got int16'),
    (np.zeros((0, 4), np.uint8), 'mono8', 'zero size'),
    (np.zeros((4, 4), np.uint8), 'nv12', "unsupported encoding 'nv12'"),
])
def test_numpy_to_imgmsg_rejects_mismatched_arrays(pixels, encoding, match):
    with pytest.raises(ImageConversionError, match=match):
        numpy_to_imgmsg(pixels, encoding)


def test_error_is_a_value_error():
    assert issubclass(ImageConversionError, ValueError)
