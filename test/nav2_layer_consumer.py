"""A consumer shaped like nav2's semantic_segmentation_layer, run as its own process.

What it copies from the layer (kiwicampus/semantic_segmentation_layer): vision_msgs/LabelInfo on a
reliable, transient-local, depth-5 subscription (nav2's LatchedSubscriptionQoS(5)); labels and
confidence on best-effort, depth-50 subscriptions (nav2's SensorDataQoS(50)), paired on exact
stamps like message_filters' TimeSynchronizer (queue of 1000); both images read the way the layer
reads them, byte `v * width + u` of `data`.

It prints `matched` once the node's three publishers are in the graph, then
`label_info <threshold>` and `pair <stamp_ns>` as they come. It writes what it got to `--out` (an
.npz with a JSON record and the paired images) once it has `--frames` distinct paired stamps and
`--label-infos` LabelInfo messages, or when `--timeout` passes (then its exit status is 1).
"""

import argparse
from collections import OrderedDict
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import LabelInfo

SYNC_QUEUE = 1000
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR_DATA = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                         reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)


def stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def as_layer_reads(msg: Image) -> np.ndarray:
    """Pixel (v, u) is data[v * width + u]: the layer ignores `step` and the encoding."""
    data = np.frombuffer(bytes(msg.data), np.uint8)
    return data[:msg.height * msg.width].reshape(msg.height, msg.width).copy()


class ExactTimePairs:
    """Labels and confidence with the same stamp, paired as message_filters' exact policy does."""

    def __init__(self, queue_size: int = SYNC_QUEUE) -> None:
        self.queue_size = queue_size
        self.waiting: OrderedDict[int, dict] = OrderedDict()
        self.pairs: list[tuple[Image, Image]] = []
        self.evicted = 0

    def add(self, kind: str, msg: Image) -> None:
        slot = self.waiting.setdefault(stamp_ns(msg), {})
        slot[kind] = msg
        if len(slot) == 2:
            del self.waiting[stamp_ns(msg)]
            self.pairs.append((slot['labels'], slot['confidence']))
            print(f'pair {stamp_ns(msg)}', flush=True)
        while len(self.waiting) > self.queue_size:
            self.waiting.popitem(last=False)
            self.evicted += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--label-info', required=True, help='~/class_names of the node')
    parser.add_argument('--labels', required=True)
    parser.add_argument('--confidence', required=True)
    parser.add_argument('--frames', type=int, required=True, help='distinct stamps to pair')
    parser.add_argument('--label-infos', type=int, default=1)
    parser.add_argument('--timeout', type=float, default=120.0)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node('nav2_layer_like_consumer')
    label_infos: list[LabelInfo] = []
    pairs = ExactTimePairs()

    def on_label_info(msg: LabelInfo) -> None:
        label_infos.append(msg)
        print(f'label_info {msg.threshold}', flush=True)
    node.create_subscription(LabelInfo, args.label_info, on_label_info, LATCHED)
    node.create_subscription(Image, args.labels, lambda m: pairs.add('labels', m), SENSOR_DATA)
    node.create_subscription(Image, args.confidence, lambda m: pairs.add('confidence', m),
                             SENSOR_DATA)

    def done() -> bool:
        return (len(label_infos) >= args.label_infos
                and len({stamp_ns(lab) for lab, _ in pairs.pairs}) >= args.frames)

    topics = (args.label_info, args.labels, args.confidence)
    matched = False
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not done():
        rclpy.spin_once(node, timeout_sec=0.05)
        if not matched and all(node.count_publishers(t) > 0 for t in topics):
            matched = True
            print('matched', flush=True)

    publishers = node.get_publishers_info_by_topic(args.label_info)
    subscriptions = node.get_subscriptions_info_by_topic(args.label_info)
    record = {
        'label_infos': [{'stamp_ns': stamp_ns(m), 'threshold': float(m.threshold),
                         'class_map': [[int(c.class_id), c.class_name] for c in m.class_map]}
                        for m in label_infos],
        'label_info_publishers': [{'type': p.topic_type, 'hash': str(p.topic_type_hash),
                                   'durability': int(p.qos_profile.durability),
                                   'reliability': int(p.qos_profile.reliability)}
                                  for p in publishers],
        'label_info_subscriber_hashes': [str(s.topic_type_hash) for s in subscriptions],
        'pairs': [{'stamp_ns': stamp_ns(lab), 'confidence_stamp_ns': stamp_ns(conf),
                   'labels': [lab.encoding, lab.height, lab.width, lab.step],
                   'confidence': [conf.encoding, conf.height, conf.width, conf.step]}
                  for lab, conf in pairs.pairs],
        'unpaired': len(pairs.waiting) + pairs.evicted,
        'complete': done(),
    }
    arrays = {f'labels_{i}': as_layer_reads(lab) for i, (lab, _) in enumerate(pairs.pairs)}
    arrays.update({f'confidence_{i}': as_layer_reads(conf)
                   for i, (_, conf) in enumerate(pairs.pairs)})
    np.savez(args.out, record=np.array(json.dumps(record)), **arrays)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if record['complete'] else 1


if __name__ == '__main__':
    sys.exit(main())
