"""Malformed frames: each is rejected and counted in /diagnostics, and the node keeps serving.

"A frame larger than the model expects": the node resizes any frame to the network input, so size
alone is never an error, but a frame above `max_input_pixels` (width x height, default 8K UHD)
is rejected before its bytes are converted, so a bogus or hostile header cannot make the node
allocate without bound. The raw node here runs with a small limit to test that path.
"""

import array

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
    'unsupported encoding': (dict(width=8, height=4, encoding='yuv422'), ['yuv422']),
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
