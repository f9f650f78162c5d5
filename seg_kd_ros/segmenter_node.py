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
from seg_kd_ros.image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    imgmsg_to_rgb,
    numpy_to_imgmsg,
)
from seg_kd_ros.model_metadata import load_classes_file
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

try:  # vision_msgs is what nav2's semantic_segmentation_layer reads; optional here
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # pragma: no cover - depends on the install
    LabelInfo = None

NODE_NAME = 'segmenter'
THROTTLE_S = 5.0


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
            raise StartupError(str(exc)) from None
        except ImportError as exc:  # a backend whose library is not installed
            raise StartupError(f'backend {self.config.backend!r} is not available here: {exc}. '
                               'Install it or choose another with -p backend:=...') from None
        self._pipeline = SegmentationPipeline(self._backend, self._palette)
        self.stats = FrameStats()
        self._frames = LatestFrame()
        self._stop = threading.Event()
        self._make_topics()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='segmenter_worker', daemon=True)
        self._worker.start()
        meta = self._backend.metadata
        self.get_logger().info(
            f'{meta.model_name} ({os.path.basename(self.config.model_path)}) on '
            f'{self._backend.name}/{self._backend.device} {self._backend.precision}, network '
            f'input {meta.input_size[1]}x{meta.input_size[0]}, {len(self._classes)} classes; '
            f'listening on {self._input.topic_name}')

    # --- set-up ---------------------------------------------------------------------------
    def _load_classes(self) -> tuple[list[str], list]:
        meta = self._backend.metadata
        if not self.config.classes_file:
            return list(meta.classes), list(meta.palette)
        try:
            names, palette = load_classes_file(self.config.classes_file)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ParameterError(
                f"parameter 'classes_file' ({self.config.classes_file}): {exc}") from None
        if len(names) != len(meta.classes):
            raise ParameterError(
                f"parameter 'classes_file' ({self.config.classes_file}) has {len(names)} classes "
                f'but the model {self.config.model_path} has {len(meta.classes)}')
        return list(names), list(palette)

    def _make_topics(self) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if self.config.qos_reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST,
                               depth=qos_profile_sensor_data.depth, reliability=reliability,
                               durability=DurabilityPolicy.VOLATILE)
        if self.config.input_transport == 'compressed':
            self._input = self.create_subscription(CompressedImage, 'image/compressed',
                                                   self._on_frame, input_qos)
        else:
            self._input = self.create_subscription(Image, 'image', self._on_frame, input_qos)
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
            rgb = compressed_to_rgb(msg)
            self._check_size(rgb.shape[1], rgb.shape[0], config.max_input_pixels)
        else:
            self._check_size(msg.width, msg.height, config.max_input_pixels)
            rgb = imgmsg_to_rgb(msg)
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
        e2e_ms = None
        now = self.get_clock().now()
        if (header.stamp.sec or header.stamp.nanosec) and now.nanoseconds:  # 0: no /clock yet
            e2e_ms = (now - Time.from_msg(header.stamp)).nanoseconds / 1e6
        self.stats.count_published(e2e_ms, result.inference_ms)

    @staticmethod
    def _check_size(width: int, height: int, max_pixels: int) -> None:
        if width * height > max_pixels:
            raise ImageConversionError(
                f'frame {width}x{height} ({width * height} px) is larger than '
                f'max_input_pixels={max_pixels}')

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


def main(args=None) -> int:
    """Run the node until shutdown; return a non-zero exit status if it cannot start."""
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - rcl's parse errors have no public type
        get_logger(NODE_NAME).fatal(f'cannot start: invalid command-line arguments: {exc}')
        return 2
    try:
        node = SegmenterNode()
    except StartupError as exc:
        get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        # No teardown: destroying a DDS participant seconds after it was created can spin forever
        # in Fast DDS (DomainParticipant::set_listener while discovery is under way; seen here
        # with many nodes starting at once). Nothing is held that the OS does not release.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
