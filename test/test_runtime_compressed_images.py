"""sensor_msgs/CompressedImage <-> numpy: round trips, the size read from the header before any
decoding (a 30000 x 30000 PNG refused without memory growth), decoder messages kept off stderr."""

import array
import os
import resource
import struct
import threading

from compressed_samples import huge_png, png_chunk
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from seg_kd_ros.image_conversion import (
    ImageConversionError,
    compressed_size,
    compressed_to_rgb,
    rgb_to_compressed,
)

EIGHT_K_PIXELS = 7680 * 4320  # the node's default max_input_pixels


def smooth_rgb(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                      (x + y) % 256]).astype(np.uint8)


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoded(rgb: np.ndarray, ext: str, params=()) -> bytes:
    ok, data = cv2.imencode(ext, rgb[:, :, ::-1], list(params))
    assert ok
    return data.tobytes()


def compressed(data: bytes, fmt: str = 'png') -> CompressedImage:
    return CompressedImage(format=fmt, data=array.array('B', data))


@pytest.mark.parametrize('size', [(1, 1), (31, 17), (120, 160)])
def test_png_round_trip_is_lossless(size):
    rgb = random_rgb(*size, seed=4)
    header = Header(frame_id='cam')
    msg = rgb_to_compressed(rgb, 'png', header=header)
    assert msg.format == 'rgb8; png compressed bgr8' and msg.header.frame_id == 'cam'
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_jpeg_round_trip_is_close_and_keeps_channel_order():
    rgb = smooth_rgb(96, 128)
    rgb[:32, :32] = (255, 0, 0)  # a pure red block must stay red (no BGR swap)
    out = compressed_to_rgb(rgb_to_compressed(rgb, 'jpeg', quality=95))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 3.0
    assert out[8:24, 8:24, 0].min() > 200 and out[8:24, 8:24, 2].max() < 60


@pytest.mark.parametrize('fmt', ['jpeg', 'png', 'JPEG', 'bgr8; jpeg compressed bgr8', ''])
def test_format_strings_of_other_publishers(fmt):
    rgb = smooth_rgb(20, 30)
    msg = compressed(encoded(rgb, '.png' if fmt == 'png' else '.jpg'), fmt)
    assert np.abs(compressed_to_rgb(msg).astype(int) - rgb).mean() < 3.0


def test_grey_png_becomes_rgb():
    grey = smooth_rgb(10, 12)[:, :, 0]
    ok, data = cv2.imencode('.png', grey)
    msg = compressed(data.tobytes())
    np.testing.assert_array_equal(compressed_to_rgb(msg), np.dstack([grey] * 3))


@pytest.mark.parametrize('width, height', [(1, 1), (7, 3), (640, 480), (1921, 1083)])
@pytest.mark.parametrize('ext, params', [
    ('.png', ()), ('.jpg', ()), ('.jpg', (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),  # SOF0 and SOF2
])
def test_header_size_matches_the_decoded_size(width, height, ext, params):
    data = encoded(smooth_rgb(height, width), ext, params)
    kind, w, h = compressed_size(data)
    assert (kind, w, h) == ('png' if ext == '.png' else 'jpeg', width, height)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (h, w)


def test_jpeg_header_walk_skips_segments_and_fill_bytes():
    data = encoded(smooth_rgb(40, 50), '.jpg')
    # an APP1 segment whose payload looks like a frame header of 9999 x 9999, then fill bytes
    decoy = b'\xff\xc0\x00\x11\x08\x27\x0f\x27\x0f' + bytes(8)
    app1 = b'\xff\xe1' + struct.pack('>H', 2 + len(decoy)) + decoy
    patched = data[:2] + app1 + b'\xff\xff\xff' + data[2:]
    assert compressed_size(patched) == ('jpeg', 50, 40)
    assert compressed_to_rgb(compressed(patched, 'jpeg')).shape == (40, 50, 3)


@pytest.mark.parametrize('data, match', [
    (b'not an image at all', 'neither JPEG nor PNG'),
    (b'\x89PNG\r\n\x1a\n' + bytes(10), 'PNG cut short in its header'),
    (b'\x89PNG\r\n\x1a\n' + png_chunk(b'tEXt', bytes(13)), 'does not start with an IHDR'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF', 'JPEG cut short before its frame header'),
    (b'\xff\xd8\xff\xda\x00\x08' + bytes(6), 'no frame header'),
    (b'\xff\xd8\x00\x00', 'no marker at byte 2'),
    (b'\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10' + bytes(9), 'height 0'),
    (b'\xff\xd8\xff\xe1\x00\x01', 'length 1'),
])
def test_malformed_headers_are_named(data, match):
    with pytest.raises(ImageConversionError, match=match):
        compressed_size(data)
    with pytest.raises(ImageConversionError, match=f'cannot decode .*{match}'):
        compressed_to_rgb(compressed(data))


def test_png_header_with_a_bad_crc_is_rejected():
    data = bytearray(encoded(smooth_rgb(8, 8), '.png'))
    data[18] ^= 0x01  # a bit of the width
    with pytest.raises(ImageConversionError, match='IHDR.*CRC'):
        compressed_size(bytes(data))


def test_huge_png_is_refused_from_its_header_without_decoding():
    data = huge_png()
    assert len(data) < 200_000
    assert compressed_size(data) == ('png', 30000, 30000)
    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    too_large = r'png header: frame 30000x30000 \(900000000 px\).*max_input_pixels=33177600'
    for _ in range(20):
        with pytest.raises(ImageConversionError, match=too_large):
            compressed_to_rgb(compressed(data), max_pixels=EIGHT_K_PIXELS)
    # peak resident memory: a decode, even one freed since, would have added > 2.7 GB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib < 50 * 1024
    # a frame within the limit still decodes
    rgb = smooth_rgb(48, 64)
    assert compressed_to_rgb(compressed(encoded(rgb, '.png')), EIGHT_K_PIXELS).shape == rgb.shape


def test_max_pixels_is_inclusive():
    data = encoded(smooth_rgb(10, 20), '.jpg')
    assert compressed_to_rgb(compressed(data, 'jpeg'), max_pixels=200).shape == (10, 20, 3)
    with pytest.raises(ImageConversionError, match='max_input_pixels=199'):
        compressed_to_rgb(compressed(data, 'jpeg'), max_pixels=199)


def corrupt_frames() -> dict[str, tuple[str, bytes, str]]:
    """name -> (format, data, what the error must say): frames the decoders complain about."""
    jpeg = encoded(smooth_rgb(120, 160), '.jpg')
    png = encoded(random_rgb(60, 80), '.png')
    flipped_jpeg = bytearray(jpeg)
    rng = np.random.default_rng(0)
    for i in rng.integers(len(jpeg) // 2, len(jpeg) - 10, 20):  # inside the scan data
        flipped_jpeg[i] = int(rng.integers(0, 256))
    flipped_png = bytearray(png)
    flipped_png[len(png) // 2] ^= 0x55  # inside IDAT: its CRC no longer matches
    return {
        'jpeg with damaged scan data': ('jpeg', bytes(flipped_jpeg), 'Corrupt JPEG data'),
        'jpeg with bytes before EOI': ('jpeg', jpeg[:-2] + b'junk' + jpeg[-2:],
                                       'extraneous bytes before marker 0xd9'),
        'truncated jpeg': ('jpeg', jpeg[:len(jpeg) // 2], 'cannot decode'),
        'png with a CRC error': ('png', bytes(flipped_png), 'libpng error'),
        'truncated png': ('png', png[:len(png) // 2], 'PNG input buffer is incomplete'),
    }


@pytest.mark.parametrize('name', list(corrupt_frames()))
def test_corrupt_frames_raise_with_the_decoder_message_and_nothing_on_stderr(name, capfd):
    fmt, data, words = corrupt_frames()[name]
    with pytest.raises(ImageConversionError, match='cannot decode') as caught:
        compressed_to_rgb(compressed(data, fmt))
    assert words in str(caught.value)
    assert '\n' not in str(caught.value)
    out, err = capfd.readouterr()
    assert (out, err) == ('', ''), 'decoder messages must not reach the console'


def test_decoder_warning_of_a_usable_image_goes_to_the_callback(capfd):
    data = bytearray(encoded(smooth_rgb(64, 64), '.jpg'))
    jfif = data.find(b'JFIF\x00')
    data[jfif + 5] = 2  # JFIF version 2.x: libjpeg warns and decodes
    warnings = []
    rgb = compressed_to_rgb(compressed(bytes(data), 'jpeg'), warn=warnings.append)
    assert rgb.shape == (64, 64, 3)
    assert len(warnings) == 1 and 'unknown JFIF revision number 2' in warnings[0]
    assert compressed_to_rgb(compressed(bytes(data), 'jpeg')).shape == (64, 64, 3)  # dropped
    assert capfd.readouterr() == ('', '')


def test_ros_log_lines_written_meanwhile_reach_stderr(capfd, monkeypatch):
    """A ROS log line another thread writes while a decode holds stderr is given back."""
    fmt, data, _ = corrupt_frames()['png with a CRC error']
    line = '[WARN] [1700000000.000000000] [segmenter]: another thread\n'
    real_imdecode = cv2.imdecode

    def imdecode_while_another_thread_logs(buf, flags):
        writer = threading.Thread(target=os.write, args=(2, line.encode()))
        writer.start()
        writer.join()
        return real_imdecode(buf, flags)

    monkeypatch.setattr(cv2, 'imdecode', imdecode_while_another_thread_logs)
    with pytest.raises(ImageConversionError, match='libpng error') as caught:
        compressed_to_rgb(compressed(data, fmt))
    assert 'another thread' not in str(caught.value)
    assert capfd.readouterr().err == line


@pytest.mark.parametrize('fmt, data, match', [
    ('jpeg', b'', 'no data'),
    ('jpeg', b'not a jpeg at all', 'cannot decode'),
    ('png', b'\x89PNG\r\n\x1a\n' + bytes(40), 'cannot decode'),
    ('jpeg', encoded(smooth_rgb(64, 64), '.jpg')[:40], 'cannot decode'),
    ('bmp', b'BM' + bytes(60), "unsupported compressed format 'bmp'"),
    ('16UC1; compressedDepth png', b'\x00' * 20, 'unsupported compressed format'),
])
def test_unsupported_compressed_images(fmt, data, match):
    with pytest.raises(ImageConversionError, match=match):
        compressed_to_rgb(compressed(data, fmt))


@pytest.mark.parametrize('rgb, fmt, match', [
    (np.zeros((4, 4), np.uint8), 'jpeg', 'HxWx3 uint8'),
    (np.zeros((4, 4, 3), np.float32), 'png', 'HxWx3 uint8'),
    (np.zeros((4, 4, 3), np.uint8), 'webp', "unsupported compressed format 'webp'"),
])
def test_rgb_to_compressed_rejects_bad_input(rgb, fmt, match):
    with pytest.raises(ImageConversionError, match=match):
        rgb_to_compressed(rgb, fmt)
