"""The segmenter node as its own process, checked over DDS from this process.

One node (tiny ONNX model, network 128x64) serves every test of this module; the frames are
160x96, so input and network resolution differ. Reference outputs come from the ONNX Runtime
backend run here on the same image, through the same pre/post-processing functions.
"""


from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from node_harness import NodeProcess, Probe, make_image, node_args, unique_namespace
import numpy as np
import pytest
from sensor_msgs.msg import Image
from tiny_models import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, make_tiny_onnx
from vision_msgs.msg import LabelInfo

from seg_kd_ros.backends import create_backend
from seg_kd_ros.image_conversion import imgmsg_to_numpy
from seg_kd_ros.postprocess import PaletteTable, confidence_to_mono8, resize_outputs
from seg_kd_ros.preprocessing import resize_to_network

NET_H, NET_W = 64, 128
IMG_H, IMG_W = 96, 160


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('node_outputs')
    model = make_tiny_onnx(tmp / 'tiny.onnx', NET_H, NET_W, seed=3)
    namespace = unique_namespace('outputs')
    node = NodeProcess(node_args(model, namespace), tmp / 'node.log')
    probe = Probe()
    backend = create_backend(model, 'onnxruntime')
    try:
        node.wait_ready()
        base = f'{namespace}/segmenter'
        for topic in ('labels', 'confidence'):
            probe.subscribe(f'{base}/{topic}', Image)
        probe.subscribe('/diagnostics', DiagnosticArray)
        publisher = probe.publisher(f'{namespace}/image', Image, reliable=False)
        probe.wait_matched(publisher, [f'{base}/labels', f'{base}/confidence'])
        yield {'node': node, 'probe': probe, 'pub': publisher, 'base': base,
               'backend': backend, 'namespace': namespace}
    finally:
        probe.close()
        backend.close()
        code = node.stop()
        assert code == 0, f'node exit code {code} after SIGINT:\n{node.output()}'


def reference(backend, rgb, size=None):
    """Labels and float confidence the backend gives for `rgb`, resized to `size` if given."""
    labels, confidence = backend.infer(resize_to_network(rgb, (NET_H, NET_W))[np.newaxis])
    labels, confidence = labels[0], confidence[0]
    if size is not None:
        labels, confidence = resize_outputs(labels, confidence, size)
    return labels, confidence


def request(s, rgb, encoding='rgb8', topic='labels'):
    msg = s['probe'].image_msg(rgb, encoding)
    return msg, s['probe'].request(s['pub'], msg, f'{s["base"]}/{topic}')


def output_for(s, topic, msg):
    got = s['probe'].wait_for(f'{s["base"]}/{topic}', lambda m: m.header.stamp == msg.header.stamp)
    assert got is not None, f'no {topic} for the frame'
    return got


def test_labels_and_confidence_at_input_resolution_match_the_backend(setup):
    s = setup
    rgb = make_image(IMG_H, IMG_W, seed=1)
    msg, labels_msg = request(s, rgb)
    conf_msg = output_for(s, 'confidence', msg)
    for out in (labels_msg, conf_msg):
        assert (out.encoding, out.width, out.height) == ('mono8', IMG_W, IMG_H)
        assert out.header.frame_id == msg.header.frame_id
        assert out.header.stamp == msg.header.stamp
    ref_labels, ref_conf = reference(s['backend'], rgb, (IMG_H, IMG_W))
    labels = imgmsg_to_numpy(labels_msg)
    assert len(np.unique(ref_labels)) > 1  # a test image that exercises several classes
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(imgmsg_to_numpy(conf_msg), confidence_to_mono8(ref_conf))


@pytest.mark.parametrize('encoding', ['bgr8', 'rgba8', 'bgra8', 'mono8'])
def test_every_camera_encoding_gives_the_rgb_result(setup, encoding):
    s = setup
    rgb = make_image(IMG_H, IMG_W, seed=2)
    if encoding == 'mono8':
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        pixels = rgb[:, :, 0]
    else:
        order = [2, 1, 0] if encoding.startswith('bgr') else [0, 1, 2]
        pixels = rgb[:, :, order]
        if encoding.endswith('a8'):
            pixels = np.dstack([pixels, np.full(rgb.shape[:2], 255, np.uint8)])
    msg, labels_msg = request(s, pixels, encoding)
    np.testing.assert_array_equal(imgmsg_to_numpy(labels_msg),
                                  reference(s['backend'], rgb, (IMG_H, IMG_W))[0])


def test_class_map_is_latched_label_info(setup):
    s = setup
    probe = Probe('late_joiner')  # subscribes long after the node published: transient local
    try:
        topic = f'{s["base"]}/class_names'
        probe.subscribe(topic, LabelInfo, latched=True)
        msg = probe.wait_for(topic)
        assert msg is not None, 'no latched class names'
        assert [(c.class_id, c.class_name) for c in msg.class_map] == list(
            enumerate(CITYSCAPES_CLASSES))
        assert msg.threshold == 0.0  # the default: no threshold
    finally:
        probe.close()


def test_diagnostics_report_rates_latency_and_model(setup):
    s = setup
    rgb = make_image(IMG_H, IMG_W, seed=4)
    request(s, rgb)
    values = s['probe'].diagnostics(f'{s["base"]}', lambda v: int(v['frames_published']) >= 1)
    assert values['backend'] == 'onnxruntime'
    assert values['precision'] == 'fp32'
    assert values['device'] == 'cpu'
    assert values['model'].endswith('tiny.onnx')
    assert values['network_input'] == f'{NET_W}x{NET_H}'
    for key in ('latency_e2e_p50_ms', 'latency_e2e_p99_ms', 'latency_inference_p50_ms',
                'latency_inference_p99_ms', 'input_rate_hz', 'output_rate_hz'):
        assert np.isfinite(float(values[key])) and float(values[key]) >= 0.0, key
    assert float(values['latency_e2e_p50_ms']) >= float(values['latency_inference_p50_ms'])
    for key in ('frames_received', 'frames_dropped', 'frames_rejected'):
        assert int(values[key]) >= 0
    assert values['_level'] in (DiagnosticStatus.OK, DiagnosticStatus.WARN)


def test_overlay_is_computed_only_while_subscribed(setup):
    s = setup
    probe = s['probe']
    request(s, make_image(IMG_H, IMG_W, seed=5))
    values = probe.diagnostics(s['base'], lambda v: int(v['frames_published']) >= 1)
    assert values['overlays_published'] == '0'
    topic = f'{s["base"]}/overlay'
    probe.subscribe(topic, Image)
    try:
        rgb = make_image(IMG_H, IMG_W, seed=6)
        msg, overlay = request(s, rgb, topic='overlay')  # re-published until the node sees us
        assert (overlay.encoding, overlay.width, overlay.height) == ('rgb8', IMG_W, IMG_H)
        assert overlay.header.frame_id == msg.header.frame_id
        ref_labels, _ = reference(s['backend'], rgb, (IMG_H, IMG_W))
        np.testing.assert_array_equal(imgmsg_to_numpy(overlay),
                                      PaletteTable(CITYSCAPES_PALETTE).overlay(rgb, ref_labels,
                                                                               0.5))
    finally:
        probe.unsubscribe(topic)


def test_runtime_parameters_threshold_32fc1_network_resolution(setup):
    s = setup
    probe, node_name = s['probe'], s['base']
    results = probe.set_parameters(node_name, confidence_encoding='32FC1',
                                   confidence_threshold=0.5)
    assert all(r.successful for r in results), [r.reason for r in results]
    try:
        rgb = make_image(IMG_H, IMG_W, seed=7)
        msg, labels_msg = request(s, rgb)
        conf_msg = output_for(s, 'confidence', msg)
        assert (conf_msg.encoding, conf_msg.width, conf_msg.height) == ('32FC1', IMG_W, IMG_H)
        confidence = imgmsg_to_numpy(conf_msg)
        ref_labels, ref_conf = reference(s['backend'], rgb, (IMG_H, IMG_W))
        np.testing.assert_array_equal(confidence, ref_conf)
        labels = imgmsg_to_numpy(labels_msg)
        low = confidence < 0.5
        assert 0 < low.sum() < low.size  # the threshold splits this image
        assert (labels[low] == 255).all()
        np.testing.assert_array_equal(labels[~low], ref_labels[~low])

        results = probe.set_parameters(node_name, output_resolution='network',
                                       confidence_threshold=0.0)
        assert all(r.successful for r in results), [r.reason for r in results]
        msg, labels_msg = request(s, rgb)
        conf_msg = output_for(s, 'confidence', msg)
        for out in (labels_msg, conf_msg):
            assert (out.width, out.height) == (NET_W, NET_H)
            assert out.header.frame_id == msg.header.frame_id
        net_labels, net_conf = reference(s['backend'], rgb)
        np.testing.assert_array_equal(imgmsg_to_numpy(labels_msg), net_labels)
        np.testing.assert_array_equal(imgmsg_to_numpy(conf_msg), net_conf)
    finally:
        results = probe.set_parameters(node_name, confidence_encoding='mono8',
                                       confidence_threshold=0.0, output_resolution='input')
        assert all(r.successful for r in results)


def test_invalid_runtime_parameters_are_refused_with_a_reason(setup):
    s = setup
    probe, node_name = s['probe'], s['base']
    (result,) = probe.set_parameters(node_name, output_resolution='bogus')
    assert not result.successful
    assert 'output_resolution' in result.reason and 'network' in result.reason
    (result,) = probe.set_parameters(node_name, confidence_threshold=1.5)
    assert not result.successful and result.reason
    (result,) = probe.set_parameters(node_name, model_path='/elsewhere.onnx')
    assert not result.successful and 'read-only' in result.reason
    # still serving, with the old values
    msg, labels_msg = request(s, make_image(IMG_H, IMG_W, seed=8))
    assert (labels_msg.width, labels_msg.height) == (IMG_W, IMG_H)
    assert s['node'].alive()
