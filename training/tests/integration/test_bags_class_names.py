"""bag-eval reads the class map as the node publishes it (vision_msgs/LabelInfo) and as older nodes
did (std_msgs/String JSON), against a real segmenter_node process over DDS."""

import json

from node_harness import NodeProcess, Probe, make_image, node_args, unique_namespace
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from tiny_models import make_tiny_onnx
from vision_msgs.msg import LabelInfo, VisionClass

from seg_kd_train.bags.bag_eval import BagEvaluation, EvalOptions
from seg_kd_train.bags.make_bag import write_bag
from seg_kd_train.bags.player import (
    LABEL_INFO_TYPE,
    STRING_TYPE,
    class_map_from_json,
    class_map_from_label_info,
)

H, W = 48, 64
# Names no default has, so that finding them in the report proves they came over DDS.
NODE_NAMES = [f'surface_{i}' for i in range(19)]
OLD_NODE_NAMES = [f'older_{i}' for i in range(19)]
OLD_NODE_PALETTE = [[i, 2 * i, 3 * i] for i in range(19)]
THRESHOLD = 0.05


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('class_names')
    model = make_tiny_onnx(tmp / 'tiny.onnx', H, W)
    classes = tmp / 'classes.yaml'
    classes.write_text('classes:\n' + ''.join(
        f'  - {{name: {name}, color: [{i}, {i}, {i}]}}\n' for i, name in enumerate(NODE_NAMES)))
    namespace = unique_namespace('class_names')
    proc = NodeProcess(node_args(model, namespace, {'classes_file': classes,
                                                    'confidence_threshold': THRESHOLD}),
                       tmp / 'node.log')
    proc.wait_ready()
    yield namespace
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    rng = np.random.default_rng(0)
    frames = [{'image': make_image(H, W, seed=i), 'condition': 'fog',
               'label': rng.integers(0, 19, (H, W), dtype=np.uint8)} for i in range(3)]
    path = tmp_path_factory.mktemp('bag') / 'bag'
    write_bag(frames, path, rate=20.0, progress=False)
    return path


def evaluate(bag, out, namespace: str, class_names_topic: str):
    evaluation = BagEvaluation(bag, out, EvalOptions(
        input_topic=f'{namespace}/image', labels_topic=f'{namespace}/segmenter/labels',
        confidence_topic=f'{namespace}/segmenter/confidence',
        class_names_topic=class_names_topic, rate=None, timeout_s=10.0, grid=0, progress=False))
    return evaluation, evaluation.run()


@pytest.mark.slow
def test_bag_eval_reads_the_label_info_of_the_node(node, bag, tmp_path):
    evaluation, summary = evaluate(bag, tmp_path / 'report', node,
                                   f'{node}/segmenter/class_names')
    assert summary['classes_from'] == LABEL_INFO_TYPE
    assert summary['classes'] == NODE_NAMES
    assert summary['node_confidence_threshold'] == pytest.approx(THRESHOLD)
    assert summary['frames']['answered'] == 3
    assert list(summary['metrics']['full']['iou']) == NODE_NAMES
    assert evaluation.class_map.palette is None  # LabelInfo has no colours


@pytest.mark.slow
def test_bag_eval_reads_the_string_json_of_older_nodes(node, bag, tmp_path):
    probe = Probe('older_node')  # an older node's latched class names, beside the real outputs
    topic = f'{node}/older/class_names'
    try:
        publisher = probe.node.create_publisher(String, topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        publisher.publish(String(data=json.dumps({'classes': OLD_NODE_NAMES,
                                                  'palette': OLD_NODE_PALETTE})))
        evaluation, summary = evaluate(bag, tmp_path / 'report', node, topic)
    finally:
        probe.close()
    assert summary['classes_from'] == STRING_TYPE
    assert summary['classes'] == OLD_NODE_NAMES
    assert summary['node_confidence_threshold'] is None
    assert summary['frames']['answered'] == 3
    assert list(summary['metrics']['full']['iou']) == OLD_NODE_NAMES
    assert evaluation.class_map.palette == OLD_NODE_PALETTE


def test_class_map_from_label_info_indexes_names_by_class_id():
    msg = LabelInfo(threshold=0.4, class_map=[
        VisionClass(class_id=2, class_name='car'), VisionClass(class_id=0, class_name='road'),
        VisionClass(class_id=65535, class_name='unlabeled')])  # vision_msgs' "no class" id
    class_map = class_map_from_label_info(msg)
    assert class_map.names == ['road', '1', 'car']
    assert class_map.threshold == pytest.approx(0.4)
    assert (class_map.palette, class_map.source) == (None, LABEL_INFO_TYPE)


def test_class_map_from_json_takes_the_forms_older_nodes_published():
    with_palette = class_map_from_json(json.dumps({'classes': ['a', 'b'],
                                                   'palette': [[1, 2, 3], [4, 5, 6]]}))
    assert (with_palette.names, with_palette.palette) == (['a', 'b'], [[1, 2, 3], [4, 5, 6]])
    assert class_map_from_json('["a", "b"]').names == ['a', 'b']
    for bad in ('not json', '{}', '[1, 2]', '{"classes": "road"}', '[]'):
        assert class_map_from_json(bad) is None, bad
