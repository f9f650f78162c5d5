"""The DDS side of bag-eval: publish frames to a running segmenter_node and collect its outputs.

This is the only module of `seg_kd_train` that touches rclpy, and it imports it inside
`NodePlayer` only, so the rest of the training package never loads ROS. Frames go out as serialised
CDR bytes (no conversion); outputs come back through a thread-safe queue as `Output` records
stamped with the local receive time (`time.perf_counter`), the same clock as the send times.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import queue
import threading
import time

import numpy as np


class PlayerError(RuntimeError):
    """The node could not be reached over DDS (not running, other domain, wrong topic)."""


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
        class_names_topic: the node's latched `~/class_names`; '' to skip.
        output_reliability: 'best_effort' (matches any publisher) or 'reliable'.
    """

    def __init__(self, input_topic: str, compressed: bool, labels_topic: str,
                 confidence_topic: str, class_names_topic: str,
                 output_reliability: str = 'best_effort') -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        from seg_kd_ros.image_conversion import imgmsg_to_numpy

        self._to_numpy = imgmsg_to_numpy
        self.outputs: queue.Queue[Output] = queue.Queue()
        self.class_names: dict | None = None
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
        if class_names_topic:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.node.create_subscription(String, class_names_topic, self._on_classes, latched)
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

    def _on_classes(self, msg) -> None:
        try:
            self.class_names = json.loads(msg.data)
        except json.JSONDecodeError:
            self.node.get_logger().warn(f'class names are not JSON: {msg.data[:80]!r}')

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

    def wait_class_names(self, timeout_s: float) -> dict | None:
        """The node's latched class names (parsed JSON), or None if none came in `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.class_names is None and time.monotonic() < deadline:
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
