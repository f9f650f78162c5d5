"""Conversion between sensor_msgs images and numpy arrays (a small stand-in for cv_bridge).

`imgmsg_to_numpy` returns a view on the message's buffer whenever the bytes can be read in place
(native byte order); row padding in `step` becomes a strided view, so it costs nothing either.
Every malformed message raises `ImageConversionError` with a message that says what is wrong.
"""

import array
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'mono8': (np.dtype(np.uint8), 1),
    '8UC1': (np.dtype(np.uint8), 1),
    '8UC3': (np.dtype(np.uint8), 3),
    'mono16': (np.dtype(np.uint16), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    '32FC1': (np.dtype(np.float32), 1),
}
# encodings `imgmsg_to_rgb` accepts (a colour camera or a grey one)
RGB_INPUT_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
_TO_RGB = {
    'bgr8': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'mono8': cv2.COLOR_GRAY2RGB,
}
_HOST_BIG_ENDIAN = sys.byteorder == 'big'


class ImageConversionError(ValueError):
    """An image message that cannot be converted (bad encoding, size, step or data)."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})") from None


def _buffer(data) -> np.ndarray:
    """The message's data as a flat uint8 array, without a copy when it supports the buffer API."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def imgmsg_to_numpy(msg: Image) -> np.ndarray:
    """View a sensor_msgs/Image as an array of shape HxW (one channel) or HxWxC.

    The result shares memory with `msg.data` unless the message's byte order differs from the
    host's (then the values are converted to native order in a new array). Rows padded in `step`
    give a view with a row stride of `step`.

    Args:
        msg: the image message.

    Returns:
        The pixels, dtype as the encoding says (uint8, uint16 or float32).

    Raises:
        ImageConversionError: unsupported encoding, zero width or height, step smaller than a
            row, or data shorter than step x height.
    """
    dtype, channels = _layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'image has zero size ({width}x{height}, width x height)')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row ({width} px x {channels} ch x "
            f"{dtype.itemsize} B = {row_bytes} B) for encoding '{msg.encoding}'")
    buf = _buffer(msg.data)
    if buf.size < step * height:
        raise ImageConversionError(
            f'data has {buf.size} bytes, fewer than step x height = {step} x {height} = '
            f'{step * height}')
    big_endian = bool(msg.is_bigendian)
    msg_dtype = dtype.newbyteorder('>' if big_endian else '<')
    shape = (height, width, channels)
    strides = (step, channels * dtype.itemsize, dtype.itemsize)
    view = np.ndarray(shape, dtype=msg_dtype, buffer=buf, strides=strides)
    if channels == 1:
        view = view[:, :, 0]
    if dtype.itemsize > 1 and big_endian != _HOST_BIG_ENDIAN:
        view = view.astype(dtype)  # byte swap into native order: a copy
    return view


def imgmsg_to_rgb(msg: Image) -> np.ndarray:
    """Convert a colour or grey image message to HxWx3 uint8 RGB.

    rgb8 input is returned as a view on the message (no copy); other encodings are converted.

    Raises:
        ImageConversionError: an encoding outside `RGB_INPUT_ENCODINGS` or a malformed message.
    """
    if msg.encoding not in RGB_INPUT_ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' for a camera image "
            f"(supported: {', '.join(RGB_INPUT_ENCODINGS)})")
    pixels = imgmsg_to_numpy(msg)
    if msg.encoding == 'rgb8':
        return pixels
    return cv2.cvtColor(pixels, _TO_RGB[msg.encoding])


def numpy_to_imgmsg(image: np.ndarray, encoding: str, header=None) -> Image:
    """Pack an array into a new sensor_msgs/Image (one copy of the pixels, no row padding).

    Args:
        image: HxW or HxWxC array whose dtype and channel count match `encoding`.
        encoding: one of `ENCODINGS`.
        header: std_msgs/Header to put in the message (stamp and frame id); empty if None.

    Raises:
        ImageConversionError: unsupported encoding, or an array that does not match it.
    """
    dtype, channels = _layout(encoding)
    image = np.asarray(image)
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        want = 'HxW' if channels == 1 else f'HxWx{channels}'
        raise ImageConversionError(
            f"encoding '{encoding}' needs an {want} array, got shape {image.shape}")
    if image.dtype.kind != dtype.kind or image.dtype.itemsize != dtype.itemsize:
        raise ImageConversionError(
            f"encoding '{encoding}' needs dtype {dtype.name}, got {image.dtype.name}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageConversionError(f'array has zero size {image.shape}')
    image = np.ascontiguousarray(image, dtype=dtype)  # native byte order, C order
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = image.shape[0], image.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = image.shape[1] * channels * dtype.itemsize
    data = array.array('B')
    data.frombytes(image.reshape(-1).view(np.uint8).data)
    msg.data = data
    return msg


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a jpeg or png sensor_msgs/CompressedImage to HxWx3 uint8 RGB.

    `format` may be plain ('jpeg', 'png') or image_transport's form ('bgr8; jpeg compressed
    bgr8'); an empty format is decoded by content.

    Raises:
        ImageConversionError: a format other than jpeg/png, or data that does not decode.
    """
    fmt = msg.format.lower()
    known = any(name in fmt for name in ('jpeg', 'jpg', 'png'))
    if (fmt and not known) or 'depth' in fmt:
        raise ImageConversionError(
            f"unsupported compressed format '{msg.format}' (supported: jpeg, png)")
    buf = _buffer(msg.data)
    if buf.size == 0:
        raise ImageConversionError('compressed image has no data')
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageConversionError(f"cannot decode '{msg.format}' image: {exc}") from None
    if bgr is None:
        raise ImageConversionError(
            f"cannot decode '{msg.format}' image ({buf.size} bytes): corrupt or not jpeg/png")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_compressed(rgb: np.ndarray, fmt: str = 'jpeg', header=None,
                      quality: int = 90) -> CompressedImage:
    """Encode HxWx3 uint8 RGB as a sensor_msgs/CompressedImage (image_transport's format string).

    Args:
        rgb: the image.
        fmt: 'jpeg' or 'png'.
        header: std_msgs/Header for the message; empty if None.
        quality: jpeg quality 0-100 (ignored for png).

    Raises:
        ImageConversionError: an unsupported format or an array that is not HxWx3 uint8.
    """
    if fmt not in ('jpeg', 'png'):
        raise ImageConversionError(f"unsupported compressed format '{fmt}' (supported: jpeg, png)")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageConversionError(
            f'need an HxWx3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png',
                               cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f'OpenCV could not encode a {rgb.shape} image as {fmt}')
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f'rgb8; {fmt} compressed bgr8'
    data = array.array('B')
    data.frombytes(encoded.data)
    msg.data = data
    return msg
