"""The node's outputs as nav2's semantic_segmentation_layer consumes them, over DDS.

The node (tiny ONNX model, frames at the network size) and the consumer
(test/nav2_layer_consumer.py, the layer's QoS and exact-stamp pairing) each run as their own
process; the consumer joins after the node published its class map. This process plays the camera
and computes what the consumer must have received with the ONNX Runtime backend on the same frames.
"""

import json
from pathlib import Path
import queue
import subprocess
import sys
import threading
import time

from node_harness import (
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    Probe,
    make_image,
    node_args,
    node_env,
    unique_namespace,
)
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from tiny_models import CITYSCAPES_CLASSES, make_tiny_onnx
import vision_msgs
from vision_msgs.msg import LabelInfo, VisionClass

from seg_kd_ros.backends import create_backend
from seg_kd_ros.postprocess import IGNORE_INDEX, apply_threshold, confidence_to_mono8

# The type hash of vision_msgs 4.x's LabelInfo, which peers (Jazzy and later) compare on matching.
LABEL_INFO_HASH = 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783'
CONSUMER = Path(__file__).resolve().parent / 'nav2_layer_consumer.py'
H, W = 48, 64
FRAMES_PER_THRESHOLD = 3


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


class Consumer:
    """The consumer process; its stdout lines are collected by a thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CONSUMER), *args], text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=node_env())
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))

    def wait_line(self, wanted: str, timeout: float) -> bool:
        """True once a line starting with `wanted` was printed (now or before)."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(wanted) for line in self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self.seen.append(self.lines.get(timeout=min(left, 0.2)))
            except queue.Empty:
                continue
        return True

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return '\n'.join(self.seen)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_label_info_has_the_vision_msgs_4_fields_and_type_hash():
    prefix = Path(vision_msgs.__file__).resolve().parents[4]  # <prefix>/lib/pythonX/site-packages
    description = json.loads((prefix / 'share/vision_msgs/msg/LabelInfo.json').read_text())
    hashes = {h['type_name']: h['hash_string'] for h in description['type_hashes']}
    assert hashes['vision_msgs/msg/LabelInfo'] == LABEL_INFO_HASH
    fields = {f['name']: f['type'] for f in description['type_description_msg']
              ['type_description']['fields']}
    assert list(fields) == ['header', 'class_map', 'threshold']
    assert fields['class_map']['nested_type_name'] == 'vision_msgs/msg/VisionClass'
    assert list(VisionClass.get_fields_and_field_types().items()) == [
        ('class_id', 'uint16'), ('class_name', 'string')]

    probe = Probe('hash')  # what the graph (and so every DDS peer) sees for our message
    try:
        topic = unique_namespace('label_info_hash') + '/class_names'
        probe.node.create_publisher(LabelInfo, topic, 1)
        infos = probe.node.get_publishers_info_by_topic(topic)
        assert [str(i.topic_type_hash) for i in infos] == [LABEL_INFO_HASH]
    finally:
        probe.close()


@pytest.fixture(scope='module')
def camera(tmp_path_factory):
    """A tiny model, the frames and the backend's labels and confidence for them."""
    tmp = tmp_path_factory.mktemp('label_info')
    model = make_tiny_onnx(tmp / 'tiny.onnx', H, W, seed=5)
    frames = np.stack([make_image(H, W, seed=20 + i) for i in range(2 * FRAMES_PER_THRESHOLD)])
    backend = create_backend(model, 'onnxruntime')
    labels, confidence = backend.infer(frames)
    backend.close()
    # Two thresholds that each turn a good share of the pixels into "no class".
    thresholds = [round(float(q), 3) for q in np.quantile(confidence, [0.3, 0.7])]
    assert 0 < thresholds[0] < thresholds[1] < 1
    return {'tmp': tmp, 'model': model, 'frames': frames, 'labels': labels,
            'confidence': confidence, 'thresholds': thresholds}


@pytest.mark.slow
def test_a_nav2_layer_gets_the_class_map_late_and_pairs_labels_with_confidence(camera):
    t1, t2 = camera['thresholds']
    namespace = unique_namespace('nav2')
    base = f'{namespace}/segmenter'
    node = NodeProcess(node_args(camera['model'], namespace, {'confidence_threshold': t1}),
                       camera['tmp'] / 'node.log')
    probe = Probe('camera')
    consumer = None
    out = camera['tmp'] / 'consumer.npz'
    try:
        node.wait_ready()  # the class map is out before the node listens: the layer joins late
        consumer = Consumer(['--label-info', f'{base}/class_names', '--labels', f'{base}/labels',
                             '--confidence', f'{base}/confidence', '--label-infos', '2',
                             '--frames', str(len(camera['frames'])), '--out', str(out),
                             '--timeout', str(START_TIMEOUT + 4 * WAIT_TIMEOUT)])
        assert consumer.wait_line('matched', START_TIMEOUT), consumer.output()
        assert consumer.wait_line('label_info', WAIT_TIMEOUT), 'late joiner got no LabelInfo'
        publisher = probe.node.create_publisher(Image, f'{namespace}/image', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        probe.wait_matched(publisher, [f'{base}/labels'])
        stamps = []
        for i, rgb in enumerate(camera['frames']):
            if i == FRAMES_PER_THRESHOLD:  # the layer re-reads the class map when it changes
                results = probe.set_parameters(base, confidence_threshold=t2)
                assert [r.successful for r in results] == [True], results
            msg = probe.image_msg(rgb)
            stamps.append(stamp_ns(msg))
            deadline = time.monotonic() + WAIT_TIMEOUT
            # Resent until paired: a frame the node dropped as stale is simply sent again.
            while not consumer.wait_line(f'pair {stamps[-1]}', 2.0):
                assert time.monotonic() < deadline, f'frame {i} never paired'
                publisher.publish(msg)
        assert consumer.proc.wait(WAIT_TIMEOUT) == 0, consumer.output()
    finally:
        if consumer is not None:
            consumer.stop()
        probe.close()
        code = node.stop()
    assert code == 0, node.output()

    got = np.load(out)
    record = json.loads(str(got['record']))
    # Class map: every class once, id = label value, name from the model; the threshold follows
    # the parameter. The first message is the one published before the layer subscribed.
    names = [[i, name] for i, name in enumerate(CITYSCAPES_CLASSES)]
    assert [m['class_map'] for m in record['label_infos']] == [names, names]
    assert [m['threshold'] for m in record['label_infos']] == pytest.approx([t1, t2])
    assert record['label_info_publishers'] == [{
        'type': 'vision_msgs/msg/LabelInfo', 'hash': LABEL_INFO_HASH,
        'durability': int(DurabilityPolicy.TRANSIENT_LOCAL),
        'reliability': int(ReliabilityPolicy.RELIABLE)}]
    assert record['label_info_subscriber_hashes'] == [LABEL_INFO_HASH]

    # Pairs: exact stamps, mono8 with rows of `width` bytes (the layer indexes v * width + u),
    # nothing left unpaired, and the values the backend gives with the threshold of the moment.
    assert {p['stamp_ns'] for p in record['pairs']} == set(stamps)
    assert record['unpaired'] == 0
    class_ids = {i for i, _ in names} | {IGNORE_INDEX}
    for k, pair in enumerate(record['pairs']):
        assert pair['confidence_stamp_ns'] == pair['stamp_ns']
        assert pair['labels'] == pair['confidence'] == ['mono8', H, W, W]
        i = stamps.index(pair['stamp_ns'])
        threshold = t1 if i < FRAMES_PER_THRESHOLD else t2
        labels, confidence = got[f'labels_{k}'], got[f'confidence_{k}']
        assert set(np.unique(labels)) <= class_ids
        np.testing.assert_array_equal(confidence,
                                      confidence_to_mono8(camera['confidence'][i]))
        np.testing.assert_array_equal(labels, apply_threshold(
            camera['labels'][i], camera['confidence'][i], threshold, IGNORE_INDEX))
        assert 0 < np.count_nonzero(labels == IGNORE_INDEX) < labels.size
