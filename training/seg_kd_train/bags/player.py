"""The DDS side of bag-eval: publish frames to a running segmenter_node and collect its outputs.

This is the only module of `seg_kd_train` that touches rclpy, and it imports it inside
`NodePlayer` only, so the rest of the training package never loads ROS. Frames go out as serialised
CDR bytes (no conversion); outputs come back through a thread-safe queue as `Output` records
stamped with the local receive time (`time.perf_counter`), the same clock as the send times.

The node's latched `~/class_names` is vision_msgs/LabelInfo (what nav2 reads) or, from older nodes
and set-ups without vision_msgs, std_msgs/String JSON; the player reads the type the node
advertises in the graph and returns either as a `ClassMap`.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import queue
import threading
import time

import numpy as np

from seg_kd_ros.postprocess import IGNORE_INDEX
from seg_kd_train.errors import SegKdError

LABEL_INFO_TYPE = 'vision_msgs/msg/LabelInfo'
STRING_TYPE = 'std_msgs/msg/String'


class PlayerError(SegKdError, RuntimeError):
    """The node could not be reached over DDS (not running, other domain, wrong topic)."""


@dataclass
class ClassMap:
    """The node's class names as published on `~/class_names`."""

    names: list[str]  # indexed by class id (the label value)
    palette: list[list[int]] | None  # only the String JSON form carries colours
    threshold: float | None  # only LabelInfo carries the confidence threshold
    source: str  # the message type it came from


def class_map_from_label_info(msg) -> ClassMap:
    """A ClassMap from vision_msgs/LabelInfo; ids absent from its class_map get their number."""
    by_id = {int(c.class_id): str(c.class_name) for c in msg.class_map
             if int(c.class_id) < IGNORE_INDEX}  # from there up: "no class", not scored
    count = max(by_id) + 1 if by_id else 0
    names = [by_id.get(i, str(i)) for i in range(count)]
    return ClassMap(names, None, float(msg.threshold), LABEL_INFO_TYPE)


def class_map_from_json(text: str) -> ClassMap | None:
    """A ClassMap from the String JSON of older nodes; None if it holds no names.

    Accepts `{"classes": [...], "palette": [[r, g, b], ...]}` or a bare list of names.
    """
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(info, dict):
        names = info.get('classes') or info.get('names') or info.get('class_names')
        palette = info.get('palette')
    else:
        names, palette = info, None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None
    return ClassMap(list(names), palette if isinstance(palette, list) else None, None,
                    STRING_TYPE)


@dataclass
class Output:
    """One message from the node."""

    kind: str  # 'labels' or 'confidence'
    stamp_ns: int
    received: float  # time.perf_counter() at arrival
    array: np.ndarray  # labels uint8 HxW, confidence uint8 (0-255) or float32 (0-1) HxW
    encoding: str


class NodePlayer:
    """Publisher of camera frames and subscriber of the node's outputs, spinning in a thread.

    Args:
        input_topic: the node's image input (`/image` or `/image/compressed`).
        compressed: publish sensor_msgs/CompressedImage instead of Image.
        labels_topic: the node's `~/labels`.
        confidence_topic: the node's `~/confidence`; '' to skip.
        class_names_topic: the node's latched `~/class_names` (LabelInfo or String); '' to skip.
        output_reliability: 'best_effort' (matches any publisher) or 'reliable'.
    """

    def __init__(self, input_topic: str, compressed: bool, labels_topic: str,
                 confidence_topic: str, class_names_topic: str,
                 output_reliability: str = 'best_effort') -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from seg_kd_ros.image_conversion import imgmsg_to_numpy

        self._to_numpy = imgmsg_to_numpy
        self.outputs: queue.Queue[Output] = queue.Queue()
        self.class_names: ClassMap | None = None
        self._class_names_topic = class_names_topic
        self._class_names_sub = None
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('seg_kd_bag_eval', context=self.context)
        self.publisher = self.node.create_publisher(
            CompressedImage if compressed else Image, input_topic,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        reliability = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
                       'reliable': ReliabilityPolicy.RELIABLE}[output_reliability]
        out_qos = QoSProfile(depth=50, reliability=reliability)
        self.subscriptions = [self.node.create_subscription(
            Image, labels_topic, lambda m: self._on_image('labels', m), out_qos)]
        if confidence_topic:
            self.subscriptions.append(self.node.create_subscription(
                Image, confidence_topic, lambda m: self._on_image('confidence', m), out_qos))
        self._latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                   durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    def _on_image(self, kind: str, msg) -> None:
        received = time.perf_counter()
        stamp = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
        try:
            array = np.array(self._to_numpy(msg), copy=True)
        except ValueError as err:
            self.node.get_logger().warn(f'bad {kind} message at {stamp}: {err}')
            return
        self.outputs.put(Output(kind, stamp, received, array, msg.encoding))

    def _subscribe_class_names(self) -> bool:
        """Subscribe `~/class_names` with the type its publisher advertises; False if none yet."""
        infos = self.node.get_publishers_info_by_topic(self._class_names_topic)
        types = {info.topic_type for info in infos}
        if LABEL_INFO_TYPE in types:
            try:
                from vision_msgs.msg import LabelInfo
            except ImportError:
                self.node.get_logger().warn(
                    f'{self._class_names_topic} is {LABEL_INFO_TYPE} but vision_msgs is not '
                    'installed here (run `make setup`, or install ros-<distro>-vision-msgs); '
                    'using the default class names')
                return True
            self._class_names_sub = self.node.create_subscription(
                LabelInfo, self._class_names_topic, self._on_label_info, self._latched)
        elif STRING_TYPE in types:
            from std_msgs.msg import String
            self._class_names_sub = self.node.create_subscription(
                String, self._class_names_topic, self._on_json_classes, self._latched)
        elif types:
            self.node.get_logger().warn(
                f'{self._class_names_topic} is {", ".join(sorted(types))}, neither '
                f'{LABEL_INFO_TYPE} nor {STRING_TYPE}; using the default class names')
        return bool(types)

    def _on_label_info(self, msg) -> None:
        self.class_names = class_map_from_label_info(msg)

    def _on_json_classes(self, msg) -> None:
        class_map = class_map_from_json(msg.data)
        if class_map is None:
            self.node.get_logger().warn(
                f'{self._class_names_topic} holds no class names: {msg.data[:80]!r}')
        self.class_names = class_map

    def wait_for_node(self, timeout_s: float) -> None:
        """Wait until the node subscribes to our frames and publishes what we listen to.

        Raises:
            PlayerError: not discovered within `timeout_s`; says what is missing.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            missing = self._missing()
            if not missing:
                time.sleep(0.3)  # let both sides finish matching before the first frame
                return
            time.sleep(0.05)
        import os
        raise PlayerError(
            f'no segmenter_node found within {timeout_s:.0f} s: {"; ".join(self._missing())}. '
            f'Is it running with ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")} and '
            f'ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")}'
            ', and are the topic names right?')

    def _missing(self) -> list[str]:
        missing = []
        if self.publisher.get_subscription_count() == 0:
            missing.append(f'nobody subscribes {self.publisher.topic_name}')
        for sub in self.subscriptions:
            if self.node.count_publishers(sub.topic_name) == 0:
                missing.append(f'nobody publishes {sub.topic_name}')
        return missing

    def wait_class_names(self, timeout_s: float) -> ClassMap | None:
        """The node's latched class names, or None if none came in `timeout_s`."""
        if not self._class_names_topic:
            return None
        deadline = time.monotonic() + timeout_s
        subscribed = self._class_names_sub is not None
        while self.class_names is None and time.monotonic() < deadline:
            subscribed = subscribed or self._subscribe_class_names()
            time.sleep(0.02)
        return self.class_names

    def send(self, data: bytes) -> float:
        """Publish one serialised frame; returns the send time (time.perf_counter())."""
        sent = time.perf_counter()
        self.publisher.publish(data)
        return sent

    def close(self) -> None:
        """Stop spinning and leave the ROS graph."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
