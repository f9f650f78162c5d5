"""Conversion between sensor_msgs images and numpy arrays (a small stand-in for cv_bridge).

`imgmsg_to_numpy` returns a view on the message's buffer whenever the bytes can be read in place
(native byte order); row padding in `step` becomes a strided view, so it costs nothing either.
`imgmsg_to_rgb` converts every encoding a camera driver publishes (the table is in
`image_encodings`); `compressed_to_rgb` reads a JPEG or PNG's size from its header before it
decodes it. Every malformed message raises `ImageConversionError` with a message that says
what is wrong.
"""

import array
import contextlib
import functools
import os
import re
import struct
import sys
import tempfile
import threading
from typing import Callable
import zlib

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from seg_kd_ros.image_encodings import (
    CAMERA_ENCODINGS,
    ENCODINGS,
    HOST_BIG_ENDIAN,
    ImageConversionError,
    camera_to_rgb,
    imgmsg_to_numpy,
    message_bytes,
)

__all__ = ['CAMERA_ENCODINGS', 'ENCODINGS', 'ImageConversionError', 'check_pixel_count',
           'compressed_size', 'compressed_to_rgb', 'imgmsg_to_numpy', 'imgmsg_to_rgb',
           'numpy_to_imgmsg', 'rgb_to_compressed']


def check_pixel_count(width: int, height: int, max_pixels: int | None,
                      source: str = 'frame') -> None:
    """Raise if a frame of width x height is larger than `max_pixels` (None: no limit).

    Args:
        width: frame width in pixels.
        height: frame height in pixels.
        max_pixels: the limit (the node's `max_input_pixels`).
        source: how the message names the frame (e.g. 'png header: frame').

    Raises:
        ImageConversionError: the frame is too large; the message names `max_input_pixels`.
    """
    if max_pixels is not None and width * height > max_pixels:
        raise ImageConversionError(
            f'{source} {width}x{height} ({width * height} px) is larger than '
            f'max_input_pixels={max_pixels}')


def imgmsg_to_rgb(msg: Image, max_pixels: int | None = None) -> np.ndarray:
    """Convert a camera image message to HxWx3 uint8 RGB.

    rgb8 input is returned as a view on the message (no copy); other encodings are converted
    with OpenCV (demosaicing, YUV and colour conversions; 16-bit scaled to 8 as cv_bridge does).

    Args:
        msg: the image; its encoding one of `CAMERA_ENCODINGS`.
        max_pixels: reject a frame with more pixels than this before reading its data.

    Raises:
        ImageConversionError: an encoding outside `CAMERA_ENCODINGS`, a frame larger than
            `max_pixels`, or a malformed message.
    """
    check_pixel_count(int(msg.width), int(msg.height), max_pixels)
    return camera_to_rgb(msg)


def numpy_to_imgmsg(image: np.ndarray, encoding: str, header=None) -> Image:
    """Pack an array into a new sensor_msgs/Image (one copy of the pixels, no row padding).

    Args:
        image: HxW or HxWxC array whose dtype and channel count match `encoding`.
        encoding: one of `ENCODINGS`.
        header: std_msgs/Header to put in the message (stamp and frame id); empty if None.

    Raises:
        ImageConversionError: unsupported encoding, or an array that does not match it.
    """
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
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
    msg.is_bigendian = int(HOST_BIG_ENDIAN)
    msg.step = image.shape[1] * channels * dtype.itemsize
    data = array.array('B')
    data.frombytes(image.reshape(-1).view(np.uint8).data)
    msg.data = data
    return msg


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG markers that start a frame and carry its size: SOF0-SOF15 except DHT, JPG and DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, TEM: no length field


def compressed_size(data) -> tuple[str, int, int]:
    """The kind ('jpeg' or 'png'), width and height a compressed image's header declares.

    Reads the header only (PNG: the IHDR chunk; JPEG: the markers up to the frame header), so a
    frame can be refused for its size before it is decoded. Why a parser of our own: OpenCV has
    no header-only read (imdecode always decodes, IMREAD_REDUCED_* decode then shrink, and its
    OPENCV_IO_MAX_IMAGE_PIXELS limit is fixed at 2^30 px when the library loads), and Pillow,
    which has one, is not a dependency of the runtime; both headers are a few fixed fields.

    Args:
        data: the compressed bytes (bytes, array.array or a uint8 array).

    Raises:
        ImageConversionError: neither PNG nor JPEG, or a header that is cut short or malformed.
    """
    mv = memoryview(message_bytes(data))
    n = len(mv)
    if mv[:8] == _PNG_SIGNATURE:
        if n < 33:
            raise ImageConversionError(f'PNG cut short in its header ({n} bytes)')
        length, chunk = struct.unpack_from('>I4s', mv, 8)
        if chunk != b'IHDR' or length != 13:
            raise ImageConversionError('PNG does not start with an IHDR chunk')
        width, height, crc = struct.unpack_from('>II5xI', mv, 16)
        if zlib.crc32(mv[12:29]) != crc:
            raise ImageConversionError('PNG header (IHDR) fails its CRC check')
        return 'png', width, height
    if mv[:2] != b'\xff\xd8':
        raise ImageConversionError(f'neither JPEG nor PNG (starts with {bytes(mv[:8]).hex()})')
    i = 2
    while i < n:
        if mv[i] != 0xFF:
            raise ImageConversionError(f'JPEG has no marker at byte {i}')
        while i < n and mv[i] == 0xFF:  # fill bytes may pad a marker
            i += 1
        if i >= n:
            break
        marker, i = mv[i], i + 1
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan: no frame header came first
            raise ImageConversionError('JPEG has no frame header (SOF) before its scan')
        if i + 2 > n:
            break
        (length,) = struct.unpack_from('>H', mv, i)
        if marker in _JPEG_SOF:
            if i + 7 > n:
                break
            height, width = struct.unpack_from('>HH', mv, i + 3)
            if height == 0:  # size given by a later DNL marker, which libjpeg does not support
                raise ImageConversionError('JPEG frame header has height 0 (DNL)')
            return 'jpeg', width, height
        if length < 2:
            raise ImageConversionError(f'JPEG marker 0x{marker:02x} has length {length}')
        i += length
    raise ImageConversionError(f'JPEG cut short before its frame header ({n} bytes)')


_DECODE_LOCK = threading.Lock()


@functools.cache
def _decoder_sink():
    """The file fd 2 points at during a decode: made once, emptied for each frame."""
    return tempfile.TemporaryFile()

# a line that a ROS logger of another thread wrote while fd 2 was captured: given back to stderr
_ROS_LOG_LINE = re.compile(r'^\[(DEBUG|INFO|WARN|ERROR|FATAL)\] \[')
# OpenCV's log prefix, e.g. '[ WARN:0@0.016] global grfmt_png.cpp:793 readFromStreamOrBuffer '
_OPENCV_LOG_PREFIX = re.compile(r'^\[ ?[A-Z]+:[^\]]*\]\s+(global\s+)?\S+:\d+\s+\S+\s+')
# decoder messages that mean the pixels are damaged; others (e.g. 'libpng warning: iCCP: ...',
# 'Invalid SOS parameters for sequential JPEG' from some webcams) leave a usable image
_DAMAGED = ('Corrupt JPEG data', 'Premature end of JPEG file', 'libpng error')


@contextlib.contextmanager
def _decoder_messages():
    """Collect, as a list of lines, what native code writes to stderr (fd 2) in the block.

    libjpeg and libpng print their warnings and errors straight to the C stderr ('Corrupt JPEG
    data: ...', 'libpng error: ...'), whatever OpenCV's log level, and a corrupt JPEG still
    decodes to an image. Pointing fd 2 at a temporary file for the call is the one way to turn
    them into an error for the caller instead of raw lines on the console. fd 2 belongs to the
    process, so decodes take a lock; ROS log lines other threads wrote meanwhile go back to it.
    """
    lines: list[str] = []
    with _DECODE_LOCK:
        sink = _decoder_sink()
        sink.seek(0)
        sink.truncate()
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors='replace').splitlines():
                if _ROS_LOG_LINE.match(line):
                    os.write(2, line.encode() + b'\n')
                elif line.strip():
                    lines.append(_OPENCV_LOG_PREFIX.sub('', line.strip()))


def compressed_to_rgb(msg: CompressedImage, max_pixels: int | None = None,
                      warn: Callable[[str], None] | None = None) -> np.ndarray:
    """Decode a jpeg or png sensor_msgs/CompressedImage to HxWx3 uint8 RGB.

    `format` may be plain ('jpeg', 'png') or image_transport's form ('bgr8; jpeg compressed
    bgr8'); an empty format is decoded by content. The size is read from the header and checked
    against `max_pixels` before anything is decoded.

    Args:
        msg: the compressed image.
        max_pixels: refuse a frame whose header declares more pixels than this (None: no limit).
        warn: called with the decoder's warnings for an image that decoded all the same
            (e.g. the node's throttled logger); they are dropped if None.

    Raises:
        ImageConversionError: a format other than jpeg/png, a header that is not JPEG or PNG, a
            frame larger than `max_pixels`, or data the decoder reports as corrupt.
    """
    fmt = msg.format.lower()
    known = any(name in fmt for name in ('jpeg', 'jpg', 'png'))
    if (fmt and not known) or 'depth' in fmt:
        raise ImageConversionError(
            f"unsupported compressed format '{msg.format}' (supported: jpeg, png)")
    buf = message_bytes(msg.data)
    if buf.size == 0:
        raise ImageConversionError('compressed image has no data')
    try:
        kind, width, height = compressed_size(buf)
    except ImageConversionError as exc:
        raise ImageConversionError(
            f"cannot decode '{msg.format}' image ({buf.size} bytes): {exc}") from None
    check_pixel_count(width, height, max_pixels, f'{kind} header: frame')  # before decoding
    bgr, error = None, None
    with _decoder_messages() as messages:
        try:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        except cv2.error as exc:  # e.g. beyond OpenCV's own size limit
            error = str(exc).strip().splitlines()[-1]
    where = f'{kind} image {width}x{height} ({buf.size} bytes)'
    damaged = [line for line in messages if line.startswith(_DAMAGED)]
    if bgr is None or damaged:
        reasons = damaged or messages or [error or 'corrupt or truncated data']
        raise ImageConversionError(f"cannot decode {where}: {'; '.join(dict.fromkeys(reasons))}")
    if messages and warn is not None:
        warn(f"decoder warning for {where}: {'; '.join(dict.fromkeys(messages))}")
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
