"""ROS 2 node `segmenter`: camera image in, trainId labels, confidence and an overlay out.

Topics (relative names, so a namespace or a remap moves them):
- subscribes `image` (sensor_msgs/Image) or, with `input_transport: compressed`,
  `image/compressed` (sensor_msgs/CompressedImage), on sensor-data QoS;
- publishes `~/labels` (mono8), `~/confidence` (mono8 or 32FC1), `~/overlay` (rgb8, only while
  subscribed), `~/class_names` (latched) and `/diagnostics` (about once a second).

The subscription callback only stores the newest frame (a stale one is dropped and counted); a
worker thread runs inference on it and publishes, so latency stays bounded and memory flat when
the camera is faster than the model.
"""

import dataclasses
import json
import os
import signal
import sys
import threading

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from seg_kd_ros.backends import ModelLoadError, create_backend
from seg_kd_ros.dds_profile import profile_variable, use_shipped_dds_profile
from seg_kd_ros.image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    imgmsg_to_rgb,
    numpy_to_imgmsg,
)
from seg_kd_ros.model_metadata import MetadataError, load_classes_file
from seg_kd_ros.node_diagnostics import FrameStats, build_diagnostics
from seg_kd_ros.node_parameters import (
    PARAMETERS,
    NodeConfig,
    ParameterError,
    declare_parameters,
    read_config,
    validate,
)
from seg_kd_ros.node_pipeline import LatestFrame, SegmentationPipeline
from seg_kd_ros.postprocess import confidence_to_mono8
from seg_kd_ros.process_memory import keep_freed_memory

try:  # vision_msgs is what nav2's semantic_segmentation_layer reads; optional here
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # pragma: no cover - depends on the install
    LabelInfo = None

NODE_NAME = 'segmenter'
THROTTLE_S = 5.0
# A latency from a stamp outside this window (ms) is a clock problem, not a latency: a bag replayed
# without /clock, a camera on another clock. Such frames are counted, not measured.
TRUSTED_LATENCY_MS = (-1000.0, 10000.0)
TEARDOWN_TIMEOUT_S = 10.0


class StartupError(RuntimeError):
    """The node cannot start; the message is the one line a person needs."""


class SegmenterNode(Node):
    """Semantic segmentation of the newest camera frame with a model file's backend."""

    def __init__(self, **kwargs) -> None:
        """Declare and validate parameters, load the model, create topics and the worker.

        Raises:
            StartupError: an invalid parameter, or a model or classes file that cannot be used.
        """
        super().__init__(NODE_NAME, **kwargs)
        self._backend = None
        try:
            declare_parameters(self)
            self.config: NodeConfig = read_config(self)
            self._backend = create_backend(self.config.model_path, self.config.backend,
                                           self.config.device)
            self._classes, self._palette = self._load_classes()
        except (ParameterError, ModelLoadError) as exc:
            self.destroy_node()  # releases the DDS participant (and its shared memory) cleanly
            raise StartupError(str(exc)) from None
        self._pipeline = SegmentationPipeline(self._backend, self._palette)
        self.stats = FrameStats()
        self._frames = LatestFrame()
        self._stop = threading.Event()
        self._make_outputs()
        self._subscribe_camera()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='segmenter_worker', daemon=True)
        self._worker.start()
        meta = self._backend.metadata
        self.get_logger().info(
            f'{meta.model_name} ({os.path.basename(self.config.model_path)}) on '
            f'{self._backend.name}/{self._backend.device} {self._backend.precision}, network '
            f'input {meta.input_size[1]}x{meta.input_size[0]}, {len(self._classes)} classes; '
            f'listening on {self._input_topic}')

    # --- set-up ---------------------------------------------------------------------------
    def _load_classes(self) -> tuple[list[str], list]:
        """The model's class names and palette, or those of `classes_file` (same count)."""
        meta = self._backend.metadata
        if self.config.classes_file:
            source = f"parameter 'classes_file' ({self.config.classes_file})"
            try:
                names, palette = load_classes_file(self.config.classes_file)
                meta = meta.with_classes(names, palette, source)
            except MetadataError as exc:
                raise ParameterError(str(exc) if source in str(exc)
                                     else f'{source}: {exc}') from None
        return list(meta.classes), list(meta.palette)

    def _make_outputs(self) -> None:
        """Create every output (the class map published) before any frame can arrive."""
        # Reliable keep-last: matches best-effort (sensor-data) and reliable readers alike.
        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                reliability=ReliabilityPolicy.RELIABLE)
        self._labels_pub = self.create_publisher(Image, '~/labels', output_qos)
        self._confidence_pub = self.create_publisher(Image, '~/confidence', output_qos)
        self._overlay_pub = self.create_publisher(Image, '~/overlay', output_qos)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        msg_type = LabelInfo if LabelInfo is not None else String
        self._class_names_pub = self.create_publisher(msg_type, '~/class_names', latched)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._publish_class_names()

    def _subscribe_camera(self) -> None:
        """Subscribe the camera now, or, with `qos_reliability: auto`, once it is in the graph.

        auto matches the camera: a reliable subscription where every publisher is reliable (so
        frames larger than one UDP datagram are not lost to fragmentation), best effort where
        any publisher is best effort (a reliable subscription would not match it).
        """
        compressed = self.config.input_transport == 'compressed'
        self._input_type = CompressedImage if compressed else Image
        self._input_topic = self.resolve_topic_name('image/compressed' if compressed else 'image')
        self._input = None
        self._qos_timer = None
        if self.config.qos_reliability != 'auto':
            self._create_input(self.config.qos_reliability == 'reliable')
        elif not self._match_camera():
            self.get_logger().info(f'qos_reliability auto: waiting for a publisher on '
                                   f'{self._input_topic} to match its reliability')
            self._qos_timer = self.create_timer(0.2, self._match_camera)

    def _match_camera(self) -> bool:
        """Subscribe with the camera publishers' reliability; False while there are none."""
        if self._input is not None:
            return True
        publishers = self.get_publishers_info_by_topic(self._input_topic)
        if not publishers:
            return False
        reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                       for p in publishers)
        self._create_input(reliable)
        if self._qos_timer is not None:
            self.destroy_timer(self._qos_timer)
            self._qos_timer = None
        self.get_logger().info(f'qos_reliability auto: {len(publishers)} publisher(s) on '
                               f'{self._input_topic}, subscribing '
                               f'{"reliable" if reliable else "best effort"}')
        return True

    def _create_input(self, reliable: bool) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=qos_profile_sensor_data.depth,
                         reliability=(ReliabilityPolicy.RELIABLE if reliable
                                      else ReliabilityPolicy.BEST_EFFORT),
                         durability=DurabilityPolicy.VOLATILE)
        self._input = self.create_subscription(self._input_type, self._input_topic,
                                               self._on_frame, qos)

    def _publish_class_names(self) -> None:
        if LabelInfo is not None:
            msg = LabelInfo(class_map=[VisionClass(class_id=i, class_name=name)
                                       for i, name in enumerate(self._classes)],
                            threshold=float(self.config.confidence_threshold))
            msg.header.stamp = self.get_clock().now().to_msg()
        else:
            msg = String(data=json.dumps({'classes': self._classes,
                                          'palette': [list(map(int, c)) for c in self._palette]}))
        self._class_names_pub.publish(msg)

    def _on_set_parameters(self, params) -> SetParametersResult:
        updates = {}
        for param in params:
            if param.name not in PARAMETERS:
                continue
            try:
                updates[param.name] = validate(param.name, param.value)
            except ParameterError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        self.config = dataclasses.replace(self.config, **updates)
        if LabelInfo is not None and 'confidence_threshold' in updates:
            self._publish_class_names()
        return SetParametersResult(successful=True)

    # --- frames ---------------------------------------------------------------------------
    def _on_frame(self, msg) -> None:
        self.stats.count_received()
        if self._frames.put(msg):
            self.stats.count_dropped()

    def _work(self) -> None:
        while not self._stop.is_set():
            msg = self._frames.take(timeout=0.2)
            if msg is None:
                continue
            try:
                self._process(msg)
            except ImageConversionError as exc:
                self.stats.count_rejected(str(exc))
                self.get_logger().warning(f'rejected a frame: {exc}',
                                          throttle_duration_sec=THROTTLE_S)
            except Exception as exc:  # noqa: BLE001 - keep serving the next frames
                if self._stop.is_set() or not self.context.ok():
                    return  # shutting down: publishing after the context ended fails
                self.stats.count_error(f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'inference failed: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=THROTTLE_S)

    def _process(self, msg) -> None:
        config = self.config  # one consistent snapshot for this frame
        if isinstance(msg, CompressedImage):
            # size read from the header and checked before decoding
            rgb = compressed_to_rgb(msg, config.max_input_pixels, self._decoder_warning)
        else:
            rgb = imgmsg_to_rgb(msg, config.max_input_pixels)  # size checked before converting
        want_overlay = config.publish_overlay and self._overlay_pub.get_subscription_count() > 0
        result = self._pipeline.run(rgb, config.output_resolution, config.confidence_threshold,
                                    config.overlay_alpha if want_overlay else None)
        header = msg.header
        self._labels_pub.publish(numpy_to_imgmsg(result.labels, 'mono8', header))
        if config.confidence_encoding == '32FC1':
            confidence = numpy_to_imgmsg(result.confidence, '32FC1', header)
        else:
            confidence = numpy_to_imgmsg(confidence_to_mono8(result.confidence), 'mono8', header)
        self._confidence_pub.publish(confidence)
        if result.overlay is not None:
            self._overlay_pub.publish(numpy_to_imgmsg(result.overlay, 'rgb8', header))
            self.stats.count_overlay()
        self.stats.count_published(self._trusted_latency_ms(header.stamp), result.inference_ms)

    def _trusted_latency_ms(self, stamp) -> float | None:
        """Latency now - stamp in ms; None without a clock yet or for an untrusted stamp."""
        now = self.get_clock().now()
        if not (stamp.sec or stamp.nanosec) or not now.nanoseconds:  # 0: no /clock yet
            return None
        e2e_ms = (now - Time.from_msg(stamp)).nanoseconds / 1e6
        low, high = TRUSTED_LATENCY_MS
        if low <= e2e_ms <= high:
            return e2e_ms
        if self.stats.count_stamp_out_of_range():
            self.get_logger().warning(
                f"a frame stamp is {e2e_ms / 1000:.1f} s from this node's clock; frames stamped "
                f'outside {low / 1000:g} to {high / 1000:g} s are left out of the latency '
                'figures (counted as stamps_out_of_range). Replaying a bag? Use --clock and '
                'use_sim_time:=true.')
        return None

    def _decoder_warning(self, message: str) -> None:
        self.get_logger().warning(f'image decoder: {message}', throttle_duration_sec=THROTTLE_S)

    def _publish_diagnostics(self) -> None:
        backend, meta = self._backend, self._backend.metadata
        static = {'backend': backend.name, 'precision': backend.precision,
                  'device': backend.device, 'model': self.config.model_path,
                  'model_name': meta.model_name,
                  'network_input': f'{meta.input_size[1]}x{meta.input_size[0]}',
                  'input_transport': self.config.input_transport,
                  'output_resolution': self.config.output_resolution,
                  'confidence_encoding': self.config.confidence_encoding}
        self._diagnostics_pub.publish(build_diagnostics(
            self.get_clock().now().to_msg(), self.get_fully_qualified_name(), meta.model_name,
            self.stats.snapshot(), static))

    # --- shutdown -------------------------------------------------------------------------
    def _close_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def destroy_node(self) -> None:
        """Stop the worker, release the model, then destroy the node."""
        stop = getattr(self, '_stop', None)
        if stop is not None:
            stop.set()
            self._frames.close()
            self._worker.join(timeout=10.0)
        self._close_backend()
        super().destroy_node()


def _leave(status: int) -> None:
    """Shut rclpy down and exit: DDS frees its shared memory, exit handlers its port locks.

    Destroying a DDS participant seconds after it was created can spin forever in Fast DDS
    (DomainParticipant::set_listener while discovery is under way; seen here with many nodes
    starting at once), so a watchdog exits anyway after TEARDOWN_TIMEOUT_S.
    """
    watchdog = threading.Timer(TEARDOWN_TIMEOUT_S, os._exit, (status,))
    watchdog.daemon = True
    watchdog.start()
    rclpy.try_shutdown()
    sys.exit(status)


def main(args=None) -> int:
    """Run the node until shutdown; return a non-zero exit status if it cannot start."""
    keep_freed_memory()  # camera-sized buffers reused, not page-faulted afresh every frame
    profile = use_shipped_dds_profile()
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - rcl's parse errors have no public type
        get_logger(NODE_NAME).fatal(f'cannot start: invalid command-line arguments: {exc}')
        return 2
    if profile:
        get_logger(NODE_NAME).info(
            f'Fast DDS profile {profile} (16 MiB shared memory; UDP on 127.0.0.1 only, so '
            f'other hosts do not see these topics): set {profile_variable()} to use your own')
    try:
        node = SegmenterNode()
    except StartupError as exc:
        get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        _leave(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C under ros2 launch reaches the node twice (the terminal's and the launch's
        # SIGINT): the second must not interrupt the teardown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
