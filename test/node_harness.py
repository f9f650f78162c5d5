"""Helpers for the node tests: the node as its own process, and an rclpy probe in the test process.

The node is started the way `ros2 run`/`ros2 launch` start it (`segmenter_node --ros-args ...`),
in a namespace of its own so tests never see each other's topics. Waits poll with generous
timeouts (the test machine is shared and loaded); tests assert behaviour, not speed.
"""

from collections import defaultdict
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from seg_kd_ros.image_conversion import numpy_to_imgmsg

START_TIMEOUT = 90.0
WAIT_TIMEOUT = 30.0
NODE_EXE = shutil.which('segmenter_node', path=str(Path(sys.executable).parent)) or shutil.which(
    'segmenter_node')


def node_env(extra: dict | None = None) -> dict:
    """Environment for a node process: loopback DDS, our domain, unbuffered, uncoloured logs."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', '73')
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env.update(extra or {})
    return env


def unique_namespace(prefix: str) -> str:
    """A namespace no other test uses."""
    return f'/{prefix}_{uuid.uuid4().hex[:8]}'


def node_args(model: str | Path, namespace: str | None = None, params: dict | None = None,
              executable: str | None = None) -> list[str]:
    """Command line of a segmenter node process."""
    args = [executable or NODE_EXE, '--ros-args', '-p', f'model_path:={model}']
    if namespace:
        args += ['-r', f'__ns:={namespace}']
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        args += ['-p', f'{key}:={value}']
    return args


class NodeProcess:
    """A segmenter_node process whose output goes to a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, 'w')  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env or node_env())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for the start-up log line; fail with the node's output if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if 'listening on' in self.output():
                return
            if not self.alive():
                raise AssertionError(f'node exited with {self.proc.returncode}:\n{self.output()}')
            time.sleep(0.1)
        raise AssertionError(f'node not ready after {timeout} s:\n{self.output()}')

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (what Ctrl-C and ros2 launch send), then wait; kill if it hangs."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def run_to_exit(args: list[str], timeout: float = START_TIMEOUT) -> tuple[int, str]:
    """Run a node process that is expected to exit on its own; return (code, output)."""
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=node_env(), timeout=timeout)
    return done.returncode, done.stdout


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A structured RGB test image (gradients plus noise), HxWx3 uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(-40, 40, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


class Probe:
    """An rclpy node in the test process, spun in a background thread, collecting messages."""

    def __init__(self, name: str = 'probe') -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'{name}_{uuid.uuid4().hex[:6]}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._cond = threading.Condition()
        self.messages: dict[str, list] = defaultdict(list)
        self._subs = {}
        self._frame_counter = 0
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - the context was shut down under us
            pass

    def subscribe(self, topic: str, msg_type, latched: bool = False, depth: int = 10) -> None:
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                         durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                     else DurabilityPolicy.VOLATILE))

        def store(msg, topic=topic):
            with self._cond:
                self.messages[topic].append(msg)
                self._cond.notify_all()
        self._subs[topic] = self.node.create_subscription(msg_type, topic, store, qos)

    def unsubscribe(self, topic: str) -> None:
        self.node.destroy_subscription(self._subs.pop(topic))

    def publisher(self, topic: str, msg_type, reliable: bool = True, depth: int = 10):
        qos = QoSProfile(depth=depth, reliability=(ReliabilityPolicy.RELIABLE if reliable
                                                   else ReliabilityPolicy.BEST_EFFORT))
        return self.node.create_publisher(msg_type, topic, qos)

    def wait_for(self, topic: str, predicate=lambda m: True, timeout: float = WAIT_TIMEOUT):
        """Return the first message on `topic` that satisfies `predicate`, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages[topic]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def wait_matched(self, publisher, output_topics: list[str], timeout: float = START_TIMEOUT):
        """Wait until the node subscribes our publisher and publishes every output topic."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publisher.get_subscription_count() > 0 and all(
                    self.node.count_publishers(t) > 0 for t in output_topics):
                return
            time.sleep(0.1)
        raise AssertionError(f'no match on {publisher.topic_name} / {output_topics}')

    def header(self, frame_id: str | None = None) -> Header:
        """A header with a fresh stamp and a unique frame id."""
        self._frame_counter += 1
        stamp = self.node.get_clock().now().to_msg()
        return Header(stamp=stamp, frame_id=frame_id or f'camera_{self._frame_counter}')

    def image_msg(self, rgb: np.ndarray, encoding: str = 'rgb8'):
        return numpy_to_imgmsg(rgb, encoding, self.header())

    def request(self, publisher, msg, topic: str, timeout: float = WAIT_TIMEOUT,
                retry_s: float = 3.0):
        """Publish `msg` until a message with its stamp arrives on `topic`; return that message.

        Re-publishing covers a frame lost on best-effort QoS or dropped as stale by the node.
        """
        stamp = msg.header.stamp
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(msg)
            got = self.wait_for(topic, lambda m: m.header.stamp == stamp,
                                min(retry_s, deadline - time.monotonic()))
            if got is not None:
                return got
        raise AssertionError(f'no message on {topic} for stamp {stamp} after {timeout} s')

    def diagnostics(self, name: str, predicate=lambda v: True, timeout: float = WAIT_TIMEOUT):
        """Wait until the newest /diagnostics status `name` satisfies `predicate`; its values."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                arrays = list(self.messages['/diagnostics'])
            for array in reversed(arrays):
                status = next((st for st in array.status if st.name == name), None)
                if status is None:
                    continue
                values = {kv.key: kv.value for kv in status.values}
                values['_level'] = status.level
                values['_message'] = status.message
                if predicate(values):
                    return values
                break
            time.sleep(0.1)
        raise AssertionError(f'no /diagnostics status {name!r} as expected in {timeout} s')

    def set_parameters(self, node_name: str, **values) -> list:
        """Call the node's set_parameters service; return the results."""
        client = self.node.create_client(SetParameters, f'{node_name}/set_parameters')
        try:
            assert client.wait_for_service(timeout_sec=WAIT_TIMEOUT), 'no set_parameters'
            request = SetParameters.Request(parameters=[
                Parameter(name=k, value=_parameter_value(v)) for k, v in values.items()])
            future = client.call_async(request)
            deadline = time.monotonic() + WAIT_TIMEOUT
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert future.done(), 'set_parameters timed out'
            return future.result().results
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def _parameter_value(value) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
