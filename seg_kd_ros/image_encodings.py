"""How the bytes of each sensor_msgs/Image encoding are laid out, and how each becomes 8-bit RGB.

Two tables say it all: `ENCODINGS` (packed layouts: numpy dtype and samples per pixel, which
`imgmsg_to_numpy` views in place) and `CAMERA_ENCODINGS` (for every encoding a camera driver
publishes: how its pixels are read and which OpenCV conversion makes RGB of them). The strings
are exactly those of sensor_msgs/image_encodings.hpp (Jazzy and Kilted; `nv12` is Kilted's).
16-bit input is scaled to 8 bits as cv_bridge does (colour conversion at 16 bits, then
x 255 / 65535, rounded), because the network takes 8-bit RGB.
"""

import sys
from typing import Callable, NamedTuple

import cv2
import numpy as np
from sensor_msgs.msg import Image

_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)

# encoding -> (numpy dtype, samples per pixel), for every encoding whose rows are packed pixels
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (_U8, 3), 'bgr8': (_U8, 3), 'rgba8': (_U8, 4), 'bgra8': (_U8, 4),
    'rgb16': (_U16, 3), 'bgr16': (_U16, 3), 'rgba16': (_U16, 4), 'bgra16': (_U16, 4),
    'mono8': (_U8, 1), 'mono16': (_U16, 1),
    '8UC1': (_U8, 1), '8UC3': (_U8, 3), '8UC4': (_U8, 4),
    '16UC1': (_U16, 1), '32FC1': (np.dtype(np.float32), 1),
    **{f'bayer_{pattern}8': (_U8, 1) for pattern in ('rggb', 'bggr', 'gbrg', 'grbg')},
    **{f'bayer_{pattern}16': (_U16, 1) for pattern in ('rggb', 'bggr', 'gbrg', 'grbg')},
    # 4:2:2: two pixels share one U and one V, so each pixel is 2 bytes (Y and U, or Y and V)
    'uyvy': (_U8, 2), 'yuv422': (_U8, 2), 'yuyv': (_U8, 2), 'yuv422_yuy2': (_U8, 2),
}
# encodings that hold depth or other non-image values: named in the error, never segmented
DEPTH_ENCODINGS = ('16UC1', '32FC1')
HOST_BIG_ENDIAN = sys.byteorder == 'big'


class ImageConversionError(ValueError):
    """An image message that cannot be converted (bad encoding, size, step or data)."""


def message_bytes(data) -> np.ndarray:
    """The message's data as a flat uint8 array, without a copy when it supports the buffer API."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def _geometry(msg: Image) -> tuple[int, int, int]:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'image has zero size ({width}x{height}, width x height)')
    return height, width, step


def _check_data(buf: np.ndarray, needed: int, what: str) -> None:
    if buf.size < needed:
        raise ImageConversionError(f'data has {buf.size} bytes, fewer than {what} = {needed}')


def imgmsg_to_numpy(msg: Image) -> np.ndarray:
    """View a sensor_msgs/Image of a packed encoding as an array of shape HxW or HxWxC.

    The result shares memory with `msg.data` unless the message's byte order differs from the
    host's (then the values are converted to native order in a new array). Rows padded in `step`
    give a view with a row stride of `step`.

    Args:
        msg: the image message; its encoding one of `ENCODINGS`.

    Returns:
        The pixels, dtype as the encoding says (uint8, uint16 or float32).

    Raises:
        ImageConversionError: unsupported encoding, zero width or height, step smaller than a
            row, or data shorter than step x height.
    """
    try:
        dtype, channels = ENCODINGS[msg.encoding]
    except KeyError:
        raise ImageConversionError(f"unsupported encoding '{msg.encoding}' "
                                   f"(supported: {', '.join(ENCODINGS)})") from None
    height, width, step = _geometry(msg)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row ({width} px x {channels} ch x "
            f"{dtype.itemsize} B = {row_bytes} B) for encoding '{msg.encoding}'")
    buf = message_bytes(msg.data)
    _check_data(buf, step * height, f'step x height = {step} x {height}')
    big_endian = bool(msg.is_bigendian)
    msg_dtype = dtype.newbyteorder('>' if big_endian else '<')
    view = np.ndarray((height, width, channels), dtype=msg_dtype, buffer=buf,
                      strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if channels == 1:
        view = view[:, :, 0]
    if dtype.itemsize > 1 and big_endian != HOST_BIG_ENDIAN:
        view = view.astype(dtype)  # byte swap into native order: a copy
    return view


def _packed(msg: Image) -> np.ndarray:
    pixels = imgmsg_to_numpy(msg)
    if pixels.strides[0] % pixels.itemsize or not pixels.flags.aligned:
        # OpenCV needs a row stride that is a whole number of samples (odd padding of 16 bits)
        pixels = np.ascontiguousarray(pixels)
    return pixels


def _packed_422(msg: Image) -> np.ndarray:
    if int(msg.width) % 2:
        raise ImageConversionError(
            f"encoding '{msg.encoding}' is YUV 4:2:2 (two pixels share one U and one V): the "
            f'width must be even, got {msg.width}')
    return _packed(msg)


def _semi_planar(msg: Image, chroma_rows: int, chroma_step: int) -> np.ndarray:
    """The checked data of an nv* message: a Y plane, then interleaved chroma.

    As in V4L2 (whose NV12/NV21/NV24 these are), `step` is the Y plane's row stride; the chroma
    plane follows it with `chroma_rows` rows of `chroma_step` bytes, padding included.
    """
    height, width, step = _geometry(msg)
    if step < width:
        raise ImageConversionError(
            f"step {step} is smaller than one row of the Y plane ({width} B) for encoding "
            f"'{msg.encoding}'")
    buf = message_bytes(msg.data)
    _check_data(buf, step * height + chroma_step * chroma_rows,
                f"the Y and chroma planes of '{msg.encoding}' "
                f'({step} x {height} + {chroma_step} x {chroma_rows})')
    return buf


def _nv_420(msg: Image) -> np.ndarray:
    """nv12 / nv21 as the (H * 3/2) x W view OpenCV's YUV 4:2:0 conversions read."""
    height, width, step = _geometry(msg)
    if height % 2 or width % 2:
        raise ImageConversionError(
            f"encoding '{msg.encoding}' is YUV 4:2:0 (one U and one V per 2x2 pixels): width "
            f'and height must be even, got {width}x{height}')
    buf = _semi_planar(msg, height // 2, step)  # chroma rows: W bytes (W/2 U V pairs) + padding
    return np.ndarray((height * 3 // 2, width), np.uint8, buf, strides=(step, 1))


def _nv_444(msg: Image) -> np.ndarray:
    """nv24 (a Y plane, then full-resolution U V pairs) as a UYVY image of twice the width.

    OpenCV has no 4:4:4 semi-planar conversion, and its 3-channel YUV2RGB uses other
    coefficients than its 4:2:x conversions (full range instead of BT.601 video range).
    Writing each pixel as its own UYVY pair (U Y V Y) lets the same BT.601 conversion as
    nv12 and uyvy decode it exactly; `camera_to_rgb` keeps every second output pixel.
    """
    height, width, step = _geometry(msg)
    buf = _semi_planar(msg, height, 2 * step)  # V4L2: chroma rows twice the Y rows' bytes
    luma = np.ndarray((height, width), np.uint8, buf, strides=(step, 1))
    uv = np.ndarray((height, width, 2), np.uint8, buf, offset=step * height,
                    strides=(2 * step, 2, 1))
    uyvy = np.empty((height, width, 4), np.uint8)
    uyvy[:, :, 0], uyvy[:, :, 2] = uv[:, :, 0], uv[:, :, 1]
    uyvy[:, :, 1] = uyvy[:, :, 3] = luma
    return uyvy.reshape(height, 2 * width, 2)


class _ToRgb(NamedTuple):
    read: Callable[[Image], np.ndarray]  # message -> the array OpenCV converts
    code: int | None  # cv2.cvtColor code to RGB; None when the pixels are RGB already


# Every encoding a camera driver publishes -> how it becomes RGB. Bayer: OpenCV names a pattern
# by the second row's second and third pixels, so sensor_msgs' rggb is OpenCV's BayerBG (the
# mapping cv_bridge uses). 8UC1/3/4 carry no channel order; they are read as OpenCV (and
# cv_bridge's display conversion) reads such a matrix: grey, BGR, BGRA.
CAMERA_ENCODINGS: dict[str, _ToRgb] = {
    'rgb8': _ToRgb(_packed, None),
    'bgr8': _ToRgb(_packed, cv2.COLOR_BGR2RGB),
    'rgba8': _ToRgb(_packed, cv2.COLOR_RGBA2RGB),
    'bgra8': _ToRgb(_packed, cv2.COLOR_BGRA2RGB),
    'mono8': _ToRgb(_packed, cv2.COLOR_GRAY2RGB),
    'rgb16': _ToRgb(_packed, None),
    'bgr16': _ToRgb(_packed, cv2.COLOR_BGR2RGB),
    'rgba16': _ToRgb(_packed, cv2.COLOR_RGBA2RGB),
    'bgra16': _ToRgb(_packed, cv2.COLOR_BGRA2RGB),
    'mono16': _ToRgb(_packed, cv2.COLOR_GRAY2RGB),
    '8UC1': _ToRgb(_packed, cv2.COLOR_GRAY2RGB),
    '8UC3': _ToRgb(_packed, cv2.COLOR_BGR2RGB),
    '8UC4': _ToRgb(_packed, cv2.COLOR_BGRA2RGB),
    **{f'bayer_{pattern}{bits}': _ToRgb(_packed, code)
       for pattern, code in (('rggb', cv2.COLOR_BayerBG2RGB), ('bggr', cv2.COLOR_BayerRG2RGB),
                             ('gbrg', cv2.COLOR_BayerGR2RGB), ('grbg', cv2.COLOR_BayerGB2RGB))
       for bits in (8, 16)},
    # 4:2:2 packed: uyvy (deprecated name yuv422) and yuyv (deprecated name yuv422_yuy2)
    'uyvy': _ToRgb(_packed_422, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422': _ToRgb(_packed_422, cv2.COLOR_YUV2RGB_UYVY),
    'yuyv': _ToRgb(_packed_422, cv2.COLOR_YUV2RGB_YUY2),
    'yuv422_yuy2': _ToRgb(_packed_422, cv2.COLOR_YUV2RGB_YUY2),
    # semi-planar: a Y plane, then interleaved chroma (nv12: U V, nv21: V U; nv24 not subsampled)
    'nv12': _ToRgb(_nv_420, cv2.COLOR_YUV2RGB_NV12),
    'nv21': _ToRgb(_nv_420, cv2.COLOR_YUV2RGB_NV21),
    'nv24': _ToRgb(_nv_444, cv2.COLOR_YUV2RGB_UYVY),
}
_SCALE_16_TO_8 = 255.0 / 65535.0  # cv_bridge's convertTo factor for 16 -> 8 bits


def camera_to_rgb(msg: Image) -> np.ndarray:
    """Convert an image of any `CAMERA_ENCODINGS` encoding to HxWx3 uint8 RGB.

    rgb8 input is returned as a view on the message (no copy).

    Raises:
        ImageConversionError: another encoding (the message lists the supported ones), or a
            malformed message (size, step, data length, odd width or height where the
            encoding's chroma subsampling needs it even).
    """
    try:
        read, code = CAMERA_ENCODINGS[msg.encoding]
    except KeyError:
        kind = ' (a depth image: only camera images are segmented)' if (
            msg.encoding in DEPTH_ENCODINGS) else ''
        raise ImageConversionError(
            f"unsupported encoding '{msg.encoding}' for a camera image{kind} "
            f"(supported: {', '.join(CAMERA_ENCODINGS)})") from None
    pixels = read(msg)
    rgb = pixels if code is None else cv2.cvtColor(pixels, code)
    if msg.encoding == 'nv24':
        rgb = np.ascontiguousarray(rgb[:, ::2])  # each pixel was written twice (see _nv_444)
    if rgb.dtype == np.uint16:
        rgb = cv2.convertScaleAbs(rgb, alpha=_SCALE_16_TO_8)  # rounds, as cv::Mat::convertTo
    return rgb
