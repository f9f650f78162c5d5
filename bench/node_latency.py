"""Latency of segmenter_node over DDS, against the backend alone and the transport alone.

For each image size (the tiny test model at network size = image size, so nothing is resized)
and with / without the shipped Fast DDS profile (config/fastdds_shm.xml), prints:
- backend: median time of the ONNX Runtime backend's `infer` on one frame (this process);
- node inf: the node's own median inference time for the frames below (from /diagnostics);
- e2e: node end-to-end latency, publish of an rgb8 frame -> its labels received (median, p99),
  one frame at a time;
- dds rtt: raw DDS round trip of the same rgb8 payload between two rclpy processes (an echo),
  the transport floor;
- overhead: e2e median - node inf (transport of the frame in and the labels out, conversion,
  post-processing, publishing): what the node adds to the model. Subtracting the node's own
  inference time (rather than the backend column) keeps the load of a shared machine out of it.

Usage: python bench/node_latency.py [--sizes 1024x512,2048x1024] [--frames 60] [--profile both]
                                   [--classes 2] [--poll busy|block]
--poll busy (default) waits for each reply in 1 ms slices, which also keeps the CPUs of a VM from
idling between frames (as a camera pipeline at full rate does); --poll block sleeps until the
reply arrives, so every hop pays the wake-up of an idle CPU (tens of ms on this shared VM).
Every rclpy process runs on the loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in
ROS_DOMAIN_ID (default 73). Measurements run in child processes because Fast DDS reads its
profile once per process.
"""

import argparse
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / 'config' / 'fastdds_shm.xml'
# Fast DDS 3 (Jazzy, Kilted) reads the first, Fast DDS 2 (Humble) the second.
PROFILE_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
OLD_FAST_DDS_DISTROS = ('humble', 'iron')
# busy: wait for replies in 1 ms slices, which also keeps this VM's CPUs from idling (a waking
# idle vCPU costs tens of ms here); block: sleep in the DDS wait set until the reply arrives.
POLL_S = {'busy': 0.001, 'block': 1.0}
sys.path.insert(0, str(REPO / 'test'))  # tiny_models: tiny ONNX models per docs/model_file.md


def env_for(profile: bool) -> dict:
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', '73')
    env['PYTHONUNBUFFERED'] = '1'
    for var in PROFILE_VARS:
        env.pop(var, None)
    if profile:
        old = env.get('ROS_DISTRO', '').lower() in OLD_FAST_DDS_DISTROS
        env[PROFILE_VARS[1] if old else PROFILE_VARS[0]] = str(PROFILE)
    return env


def frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _poll(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(POLL_S['busy'])


def backend_median_ms(model: Path, width: int, height: int, runs: int, poll: str) -> float:
    """Median `infer` time, paced and polled as the node measurement below."""
    from seg_kd_ros.backends import create_backend
    backend = create_backend(model, 'onnxruntime')
    batch = frame(width, height)[np.newaxis]
    backend.infer(batch)
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(stop,))
    if poll == 'busy':
        poller.start()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.infer(batch)
        times.append((time.perf_counter() - start) * 1e3)
        time.sleep(0.02)  # the same pacing as the node measurement
    stop.set()
    if poller.is_alive():
        poller.join()
    backend.close()
    return float(np.median(times))


# --- child processes (rclpy) -----------------------------------------------------------------
def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def run_echo(namespace: str) -> int:
    """Republish every `<ns>/ping` Image on `<ns>/pong` until interrupted."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('bench_echo')
    pong = node.create_publisher(Image, f'{namespace}/pong', _qos())
    node.create_subscription(Image, f'{namespace}/ping', pong.publish, _qos())
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


class Timer:
    """Publish a frame, spin until the reply with its stamp arrives; collect the delays."""

    def __init__(self, node, out_topic: str, in_topic: str, rgb: np.ndarray) -> None:
        from sensor_msgs.msg import Image

        from seg_kd_ros.image_conversion import numpy_to_imgmsg
        self.node = node
        self.pub = node.create_publisher(Image, out_topic, _qos())
        self.reply = None
        node.create_subscription(Image, in_topic, self._on_reply, _qos())
        self.msg = numpy_to_imgmsg(rgb, 'rgb8')
        self.msg.header.frame_id = 'bench'
        self.in_topic = in_topic
        self.poll_s = POLL_S[os.environ.get('SEG_KD_BENCH_POLL', 'busy')]

    def _on_reply(self, msg) -> None:
        self.reply = msg

    def wait_matched(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.pub.get_subscription_count() > 0
                    and self.node.count_publishers(self.in_topic) > 0):
                return
            time.sleep(0.1)
        raise RuntimeError(f'no peer on {self.pub.topic_name} / {self.in_topic}')

    def measure(self, executor, frames: int, warmup: int = 5, timeout: float = 30.0) -> list:
        times = []
        while len(times) < frames + warmup:
            self.msg.header.stamp = self.node.get_clock().now().to_msg()
            stamp = self.msg.header.stamp
            self.reply = None
            start = time.perf_counter()
            self.pub.publish(self.msg)
            deadline = time.monotonic() + timeout
            while (self.reply is None or self.reply.header.stamp != stamp):
                executor.spin_once(timeout_sec=self.poll_s)
                if time.monotonic() > deadline:
                    raise RuntimeError(f'no reply on {self.in_topic} within {timeout} s')
            times.append((time.perf_counter() - start) * 1e3)
            time.sleep(0.02)  # let both sides go idle: one frame at a time
        return times[warmup:]


def run_measure(model: str, width: int, height: int, frames: int) -> int:
    """Measure DDS round trip and node latency in this process; print one JSON line."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    rgb = frame(width, height)
    ns = f'/bench_{uuid.uuid4().hex[:8]}'
    env = dict(os.environ)
    here = [sys.executable, str(Path(__file__).resolve())]
    echo = subprocess.Popen(here + ['--echo', ns], env=env)
    exe = shutil.which('segmenter_node', path=str(Path(sys.executable).parent)) or 'segmenter_node'
    node_proc = subprocess.Popen(
        [exe, '--ros-args', '-r', f'__ns:={ns}', '-p', f'model_path:={model}',
         '-p', 'qos_reliability:=reliable'], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    from diagnostic_msgs.msg import DiagnosticArray
    rclpy.init()
    node = rclpy.create_node('bench_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    result = {}
    diagnostics = {}

    def on_diagnostics(array):
        for status in array.status:
            if status.name == f'{ns}/segmenter':
                diagnostics.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    try:
        rtt = Timer(node, f'{ns}/ping', f'{ns}/pong', rgb)
        seg = Timer(node, f'{ns}/image', f'{ns}/segmenter/labels', rgb)
        rtt.wait_matched()
        seg.wait_matched()
        result['rtt'] = rtt.measure(executor, frames)
        result['e2e'] = seg.measure(executor, frames)
        deadline = time.monotonic() + 30.0  # the node's own inference time for these frames
        while int(diagnostics.get('frames_published', 0)) < frames and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        result['node_infer_p50'] = float(diagnostics['latency_inference_p50_ms'])
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in (echo, node_proc):
            proc.send_signal(2)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(result))
    return 0


# --- main ------------------------------------------------------------------------------------
def stats(times: list) -> tuple[float, float]:
    return float(np.median(times)), float(np.percentile(times, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='1024x512,2048x1024', help='WxH list')
    parser.add_argument('--frames', type=int, default=60, help='timed frames per measurement')
    parser.add_argument('--profile', choices=('both', 'on', 'off'), default='both')
    parser.add_argument('--classes', type=int, default=2,
                        help='classes of the tiny model (default 2: cheap, steady inference, so '
                        'the overhead stands out on a loaded CPU; 19 for the Cityscapes head)')
    parser.add_argument('--poll', choices=tuple(POLL_S), default='busy',
                        help='how the probe waits for replies (see POLL_S)')
    parser.add_argument('--echo', metavar='NS', help=argparse.SUPPRESS)
    parser.add_argument('--measure', nargs=3, metavar=('MODEL', 'W', 'H'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        return run_echo(args.echo)
    if args.measure:
        model, width, height = args.measure
        return run_measure(model, int(width), int(height), args.frames)

    from tiny_models import make_tiny_onnx, tiny_metadata
    profiles = {'both': (True, False), 'on': (True,), 'off': (False,)}[args.profile]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(','):
            width, height = (int(v) for v in size.lower().split('x'))
            meta = tiny_metadata(height, width)
            meta['classes'] = meta['classes'][:args.classes]
            meta['palette'] = meta['palette'][:args.classes]
            model = make_tiny_onnx(Path(tmp) / f'tiny_{width}x{height}.onnx', height, width,
                                   num_classes=args.classes, metadata=meta)
            infer_ms = backend_median_ms(model, width, height, max(10, args.frames // 2),
                                         args.poll)
            for profile in profiles:
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), '--frames',
                     str(args.frames), '--measure', str(model), str(width), str(height)],
                    env=env_for(profile) | {'SEG_KD_BENCH_POLL': args.poll},
                    stdout=subprocess.PIPE, text=True, timeout=900)
                if done.returncode != 0:
                    print(f'measurement failed for {size} profile={profile}', file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                e2e, e2e99 = stats(result['e2e'])
                rtt, rtt99 = stats(result['rtt'])
                node_infer = result['node_infer_p50']
                rows.append((size, 'shm profile' if profile else 'default', infer_ms,
                             node_infer, e2e, e2e99, rtt, rtt99, e2e - node_infer))
    print(f'poll={args.poll}; tiny model, {args.classes} classes; ms; {args.frames} frames, one '
          "at a time, 20 ms apart; backend: infer() alone in this process; node inf: the node's "
          'own inference p50 for these frames; overhead = e2e p50 - node inf')
    print(f'{"size":>9} | {"DDS":<11} | {"backend":>8} | {"node inf":>8} | {"e2e p50":>8} | '
          f'{"e2e p99":>8} | {"rtt p50":>8} | {"rtt p99":>8} | {"overhead":>8}')
    for size, dds, *values in rows:
        print(f'{size:>9} | {dds:<11} | ' + ' | '.join(f'{v:8.1f}' for v in values))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
