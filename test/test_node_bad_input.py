"""Malformed frames: each is rejected and counted in /diagnostics, and the node keeps serving.

Camera encodings beyond rgb8 (Bayer, YUV 4:2:2 and 4:2:0, 16-bit, 8UCn) are answered with labels
of the frame's size; their malformed forms are rejected like any other bad frame. A compressed
frame's size comes from its header: a 30000 x 30000 PNG is refused without being decoded.

"A frame larger than the model expects": the node resizes any frame to the network input, so size
alone is never an error, but a frame above `max_input_pixels` (width x height, default 8K UHD)
is rejected before its bytes are converted, so a bogus or hostile header cannot make the node
allocate without bound. The raw node here runs with a small limit to test that path.
"""

import array

from compressed_samples import huge_png
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import NodeProcess, Probe, make_image, node_args, unique_namespace
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from tiny_models import make_tiny_onnx

from seg_kd_ros.image_conversion import rgb_to_compressed

NET_H, NET_W = 32, 64
MAX_PIXELS = 200_000


def raw_image(probe, width, height, encoding='rgb8', step=None, data_len=None):
    """A hand-made Image whose fields may disagree with each other."""
    msg = Image(header=probe.header(), width=width, height=height, encoding=encoding)
    msg.step = width * 3 if step is None else step
    size = msg.step * height if data_len is None else data_len
    msg.data = array.array('B', bytes(size))
    return msg


@pytest.fixture(scope='module')
def nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('node_bad_input')
    model = make_tiny_onnx(tmp / 'tiny.onnx', NET_H, NET_W)
    raw_ns, jpeg_ns = unique_namespace('bad_raw'), unique_namespace('bad_jpeg')
    raw = NodeProcess(node_args(model, raw_ns, {'qos_reliability': 'reliable',
                                                'max_input_pixels': MAX_PIXELS}),
                      tmp / 'raw.log')
    jpeg = NodeProcess(node_args(model, jpeg_ns, {'qos_reliability': 'reliable',
                                                  'input_transport': 'compressed'}),
                       tmp / 'jpeg.log')
    probe = Probe()
    try:
        raw.wait_ready()
        jpeg.wait_ready()
        probe.subscribe('/diagnostics', DiagnosticArray)
        pubs = {}
        for ns, msg_type, topic in ((raw_ns, Image, 'image'),
                                    (jpeg_ns, CompressedImage, 'image/compressed')):
            probe.subscribe(f'{ns}/segmenter/labels', Image)
            pubs[ns] = probe.publisher(f'{ns}/{topic}', msg_type)
            probe.wait_matched(pubs[ns], [f'{ns}/segmenter/labels'])
        yield {'probe': probe, 'raw': (raw, raw_ns, pubs[raw_ns]),
               'jpeg': (jpeg, jpeg_ns, pubs[jpeg_ns])}
    finally:
        probe.close()
        for node in (raw, jpeg):
            assert node.stop() == 0, node.output()


def rejected_count(probe, name):
    return int(probe.diagnostics(name)['frames_rejected'])


def reject_and_check(probe, node, name, publisher, msg, reason_words):
    """Publish one bad frame; the rejected count must grow and name the reason."""
    before = int(probe.diagnostics(name, lambda v: True)['frames_rejected'])
    publisher.publish(msg)
    values = probe.diagnostics(
        name, lambda v: int(v['frames_rejected']) > before)
    reason = values['last_reject_reason']
    assert all(word in reason for word in reason_words), reason
    assert node.alive(), node.output()


BAD_RAW = {
    'unsupported encoding': (dict(width=8, height=4, encoding='yuv420'), ['yuv420']),
    'data shorter than step x height': (dict(width=8, height=4, data_len=50), ['step x height']),
    'zero width': (dict(width=0, height=4, step=0), ['zero size']),
    'zero height': (dict(width=8, height=0), ['zero size']),
    'step smaller than a row': (dict(width=8, height=4, step=20), ['step 20']),
    'frame larger than max_input_pixels': (dict(width=600, height=400), ['max_input_pixels']),
}


def test_bad_raw_frames_are_rejected_counted_and_survived(nodes):
    probe = nodes['probe']
    node, ns, publisher = nodes['raw']
    name = f'{ns}/segmenter'
    probe.diagnostics(name)  # the node reports before we start
    for case, (fields, words) in BAD_RAW.items():
        try:
            reject_and_check(probe, node, name, publisher, raw_image(probe, **fields), words)
        except AssertionError as exc:
            raise AssertionError(f'{case}: {exc}') from None
    assert int(probe.diagnostics(name)['frames_rejected']) >= len(BAD_RAW)
    # and a good frame, at the largest allowed size, still gets labels
    rgb = make_image(400, 500, seed=1)
    good = probe.image_msg(rgb)
    labels = probe.request(publisher, good, f'{name}/labels')
    assert (labels.width, labels.height) == (500, 400)
    assert probe.diagnostics(name, lambda v: int(v['frames_published']) >= 1)


def test_corrupt_compressed_frame_is_rejected_and_good_ones_served(nodes):
    probe = nodes['probe']
    node, ns, publisher = nodes['jpeg']
    name = f'{ns}/segmenter'
    rgb = make_image(48, 80, seed=2)
    for fmt in ('jpeg', 'png'):
        msg = rgb_to_compressed(rgb, fmt, header=probe.header('cam_compressed'))
        labels = probe.request(publisher, msg, f'{name}/labels')
        assert (labels.width, labels.height, labels.encoding) == (80, 48, 'mono8')
        assert labels.header.frame_id == 'cam_compressed'
    good = rgb_to_compressed(rgb, 'jpeg')
    corrupt = CompressedImage(header=probe.header(), format='jpeg')
    data = np.frombuffer(bytes(good.data), np.uint8).copy()
    data[2:] = np.random.default_rng(0).integers(0, 256, data.size - 2)  # header kept, body noise
    corrupt.data = array.array('B', data.tobytes())
    reject_and_check(probe, node, name, publisher, corrupt, ['decode'])
    truncated = CompressedImage(header=probe.header(), format='png',
                                data=array.array('B', bytes(good.data)[:10]))
    reject_and_check(probe, node, name, publisher, truncated, ['decode'])
    msg = rgb_to_compressed(rgb, 'png', header=probe.header())
    assert probe.request(publisher, msg, f'{name}/labels') is not None


def camera_frame(probe, encoding, rows, height, width, padding=0, big_endian=False):
    """An Image of `encoding` whose rows of bytes are `rows`, each padded by `padding` bytes."""
    step = rows.shape[1] + padding
    padded = np.full((rows.shape[0], step), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    return Image(header=probe.header(), height=height, width=width, encoding=encoding, step=step,
                 is_bigendian=int(big_endian), data=array.array('B', padded.tobytes()))


def driver_frames(probe, height=48, width=80):
    """encoding -> a frame as a camera driver of that kind publishes it."""
    rgb = make_image(height, width, seed=5)
    mosaic = rgb[:, :, 1].copy()
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = rgb[0::2, 0::2, 0], rgb[1::2, 1::2, 2]  # RGGB
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # Y plane, then U and V planes
    u, v = yuv[height:].reshape(2, height // 2, width // 2)
    nv12 = np.vstack([yuv[:height], np.dstack([u, v]).reshape(height // 2, width)])
    yuyv = np.empty((height, width, 2), np.uint8)  # Y0 U Y1 V: each pair of pixels shares U, V
    yuyv[:, :, 0] = yuv[:height]
    yuyv[:, 0::2, 1], yuyv[:, 1::2, 1] = u.repeat(2, axis=0), v.repeat(2, axis=0)
    rgb16 = (rgb.astype(np.uint16) * 257).astype('>u2').view(np.uint8).reshape(height, -1)
    return {
        'bayer_rggb8': camera_frame(probe, 'bayer_rggb8', mosaic, height, width, padding=16),
        'yuv422_yuy2': camera_frame(probe, 'yuv422_yuy2', yuyv.reshape(height, -1), height,
                                    width),
        'nv12': camera_frame(probe, 'nv12', nv12, height, width, padding=8),
        'rgb16': camera_frame(probe, 'rgb16', rgb16, height, width, padding=6, big_endian=True),
        '8UC3': camera_frame(probe, '8UC3', rgb[:, :, ::-1].reshape(height, -1), height, width),
    }


def test_camera_driver_encodings_are_answered_at_the_frame_size(nodes):
    probe = nodes['probe']
    _, ns, publisher = nodes['raw']
    for encoding, msg in driver_frames(probe).items():
        labels = probe.request(publisher, msg, f'{ns}/segmenter/labels')
        assert (labels.width, labels.height, labels.encoding) == (80, 48, 'mono8'), encoding
        assert labels.header.frame_id == msg.header.frame_id


def malformed_camera_frames(probe):
    """case -> (frame, words the rejection reason must contain)."""
    def frame(encoding, height, width, step, size):
        return Image(header=probe.header(), height=height, width=width, encoding=encoding,
                     step=step, data=array.array('B', bytes(size)))
    return {
        'odd width in 4:2:2': (frame('yuv422', 4, 7, 14, 56), ['width must be even']),
        'odd height in nv12': (frame('nv12', 5, 8, 8, 60), ['must be even', '8x5']),
        'short bayer16 row': (frame('bayer_rggb16', 4, 8, 15, 60), ['step 15']),
        'nv21 without its chroma': (frame('nv21', 4, 8, 8, 32), ['chroma planes']),
        'depth image': (frame('16UC1', 4, 8, 16, 64), ['depth image']),
    }


def test_malformed_camera_frames_are_rejected_and_good_ones_answered(nodes):
    probe = nodes['probe']
    node, ns, publisher = nodes['raw']
    name = f'{ns}/segmenter'
    for case, (msg, words) in malformed_camera_frames(probe).items():
        try:
            reject_and_check(probe, node, name, publisher, msg, words)
        except AssertionError as exc:
            raise AssertionError(f'{case}: {exc}') from None
        good = driver_frames(probe, 32, 40)['bayer_rggb8']
        assert probe.request(publisher, good, f'{name}/labels').width == 40


def peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM): a decode freed since still shows."""
    with open(f'/proc/{pid}/status') as status:
        kib = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    return int(kib) * 1024


def test_huge_png_is_refused_from_its_header_and_memory_stays_flat(nodes):
    """A 110 KB PNG that decodes to 30000 x 30000 is rejected for max_input_pixels (8K UHD by
    default) without being decoded, frames between such ones are answered, and no decoder
    message reaches the console raw."""
    probe = nodes['probe']
    node, ns, publisher = nodes['jpeg']
    name = f'{ns}/segmenter'
    rgb = make_image(48, 80, seed=6)
    probe.request(publisher, rgb_to_compressed(rgb, 'png', header=probe.header()),
                  f'{name}/labels')
    peak_before = peak_rss(node.pid)
    huge = array.array('B', huge_png())
    for _ in range(3):
        msg = CompressedImage(header=probe.header(), format='png', data=huge)
        reject_and_check(probe, node, name, publisher, msg,
                         ['png header: frame 30000x30000', 'max_input_pixels'])
        good = rgb_to_compressed(rgb, 'jpeg', header=probe.header())
        assert probe.request(publisher, good, f'{name}/labels').width == 80
    growth = peak_rss(node.pid) - peak_before
    assert growth < 100 * 2**20, f'node peak RSS grew by {growth / 2**20:.0f} MiB'  # 2.7 GB
    # a JPEG whose scan data is damaged decodes with libjpeg warnings: rejected, not printed raw
    data = bytearray(rgb_to_compressed(make_image(96, 128, seed=7), 'jpeg').data)
    rng = np.random.default_rng(1)
    for i in rng.integers(len(data) // 2, len(data) - 10, 20):
        data[i] = int(rng.integers(0, 256))
    corrupt = CompressedImage(header=probe.header(), format='jpeg',
                              data=array.array('B', bytes(data)))
    reject_and_check(probe, node, name, publisher, corrupt, ['Corrupt JPEG data'])
    raw_lines = [line for line in node.output().splitlines()
                 if ('JPEG' in line or 'libpng' in line) and 'rejected a frame' not in line]
    assert not raw_lines, raw_lines
