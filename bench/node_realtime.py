"""Real time: a camera at a fixed rate into segmenter_node with a real student, for minutes.

A probe publishes `--size` rgb8 frames at `--rate` Hz (default 30 Hz, 2048x1024, the Cityscapes
camera) for `--duration` s into the node (ONNX Runtime on the CPU) and prints:
- frames sent, received by the node, processed, dropped (a newer frame replaced a waiting one,
  the node's latest-frame buffer) and lost (sent but never received);
- end-to-end latency, publish -> labels received (p50, p99), beside the node's inference
  median; the goal is e2e p99 <= 2x the inference median;
- the node's resident memory (VmRSS, sampled every second): median of the first and of the last
  30 s, and the change.

Without `--model`, pidnet_s (19 classes, random weights: they do not change the timing) is
exported at 1024x512 first, as `seg-kd export` writes it (bench/node_stages.py's
`export_student`). The node runs as in bench/node_latency.py (the node's own
main() with the stage recorder; loopback DDS, ROS_DOMAIN_ID, the shipped Fast DDS profile).

Usage: python bench/node_realtime.py [--model FILE.onnx] [--rate 30] [--duration 120]
                                     [--size 2048x1024] [--json FILE]
"""

import argparse
import json
import os
from pathlib import Path
import tempfile
import threading
import time
import uuid

from node_stages import (
    KEEP_MEMORY_ENV,
    STAGES_ENV,
    bench_env,
    export_student,
    frame,
    memory_setting,
    parse_size,
    start_node,
    stop,
)
import numpy as np

WINDOW_S = 30.0  # RSS: first vs last this many seconds
WARMUP_FRAMES = 3  # the first processed frames include the model's first runs


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (None once it is gone)."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class Camera:
    """Publishes one frame message at a fixed rate with fresh stamps; records the labels back."""

    def __init__(self, node, namespace: str, rgb: np.ndarray, rate: float) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from seg_kd_ros.image_conversion import numpy_to_imgmsg
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node, self.period = node, 1.0 / rate
        self.pub = node.create_publisher(Image, f'{namespace}/image', qos)
        self.labels_topic = f'{namespace}/segmenter/labels'
        node.create_subscription(Image, self.labels_topic, self._on_labels, qos)
        self.msg = numpy_to_imgmsg(rgb, 'rgb8')
        self.msg.header.frame_id = 'camera'
        self.sent: dict[tuple, float] = {}
        self.e2e: list[tuple[float, float]] = []  # (receive time, ms)
        self.late_ticks = 0

    def _on_labels(self, msg) -> None:
        now = time.perf_counter()
        sent = self.sent.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
        if sent is not None:
            self.e2e.append((now, (now - sent) * 1e3))

    def wait_matched(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.pub.get_subscription_count() == 0
               or self.node.count_publishers(self.labels_topic) == 0):
            if time.monotonic() > deadline:
                raise SystemExit(f'the node did not appear on {self.pub.topic_name} within '
                                 f'{timeout:.0f} s')
            time.sleep(0.1)

    def run(self, duration: float) -> None:
        """Publish at the rate for `duration` s (a late tick is sent at once, not skipped)."""
        start = time.perf_counter()
        tick = 0
        while (now := time.perf_counter()) - start < duration:
            due = start + tick * self.period
            if now < due:
                time.sleep(due - now)
            elif now - due > self.period:
                self.late_ticks += 1
            self.msg.header.stamp = stamp = self.node.get_clock().now().to_msg()
            self.sent[(stamp.sec, stamp.nanosec)] = time.perf_counter()
            self.pub.publish(self.msg)
            tick += 1


def node_counters(records: list[dict], camera: Camera, diagnostics: dict) -> dict:
    """Frames sent, received, processed, dropped and lost."""
    sent = len(camera.sent)
    received = int(diagnostics.get('frames_received', -1))
    return {'sent': sent, 'received': received, 'processed': len(records),
            'dropped': int(diagnostics.get('frames_dropped', -1)),
            'lost': sent - received if received >= 0 else None,
            'labels_received': len(camera.e2e), 'late_ticks': camera.late_ticks}


def measure(model: Path, rate: float, duration: float, size: tuple[int, int],
            tmp: Path, keep_memory: bool) -> dict:
    """Run the node and the camera; return the figures."""
    os.environ.update(bench_env() | {KEEP_MEMORY_ENV: '1' if keep_memory else ''})
    memory_setting()
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ns = f'/realtime_{uuid.uuid4().hex[:8]}'
    stages_file, log_file = tmp / 'stages.jsonl', tmp / 'node.log'
    with open(log_file, 'wb') as log:
        node_proc = start_node(str(model), ns, os.environ | {STAGES_ENV: str(stages_file)},
                               {'qos_reliability': 'reliable'}, log=log)
    rclpy.init()
    node = rclpy.create_node('realtime_camera')
    camera = Camera(node, ns, frame(*size), rate)
    diagnostics: dict = {}

    def on_diagnostics(array) -> None:
        for status in array.status:
            if status.name == f'{ns}/segmenter':
                diagnostics.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rss: list[tuple[float, float]] = []
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        while not stop_sampling.wait(1.0):
            value = rss_mb(node_proc.pid)
            if value is not None:
                rss.append((time.perf_counter(), value))
    try:
        camera.wait_matched()
        sampler = threading.Thread(target=sample_rss, daemon=True)
        start = time.perf_counter()
        sampler.start()
        camera.run(duration)
        time.sleep(3.0)  # the last frames' labels and one more diagnostics report
        stop_sampling.set()
        sampler.join()
        if node_proc.poll() is not None:
            tail = log_file.read_text(errors='replace').strip().splitlines()[-5:]
            raise SystemExit(f'the node exited during the run (status {node_proc.returncode}):'
                             '\n' + '\n'.join(tail))
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        stop(node_proc)
    records = [json.loads(line) for line in stages_file.read_text().splitlines()]
    if len(records) <= WARMUP_FRAMES or len(camera.e2e) <= WARMUP_FRAMES:
        raise SystemExit(f'the node processed only {len(records)} frames')
    inference = [r['inference_ms'] for r in records[WARMUP_FRAMES:]]
    e2e = [ms for _, ms in camera.e2e[WARMUP_FRAMES:]]
    first = [mb for t, mb in rss if t - start <= WINDOW_S]
    last = [mb for t, mb in rss if t - start >= duration - WINDOW_S]
    out = node_counters(records, camera, diagnostics)
    out.update(
        e2e_p50=float(np.median(e2e)), e2e_p99=float(np.percentile(e2e, 99)),
        e2e_max=float(np.max(e2e)), inference_p50=float(np.median(inference)),
        inference_p99=float(np.percentile(inference, 99)),
        output_hz=(len(camera.e2e) - 1) / (camera.e2e[-1][0] - camera.e2e[0][0]),
        rss_first_mb=float(np.median(first)), rss_last_mb=float(np.median(last)),
        rss_max_mb=float(max(mb for _, mb in rss)))
    out['p99_per_inference'] = out['e2e_p99'] / out['inference_p50']
    out['rss_change_mb'] = out['rss_last_mb'] - out['rss_first_mb']
    out['rss_mb_per_s'] = [[round(t - start, 1), round(mb, 1)] for t, mb in rss]
    return out


def main() -> int:
    """Export the student if needed, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', type=Path, help='model file (default: pidnet_s exported now)')
    parser.add_argument('--student', default='pidnet_s', help='what to export without --model')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate, Hz')
    parser.add_argument('--duration', type=float, default=120.0, help='seconds')
    parser.add_argument('--size', default='2048x1024', help='camera frame WxH (rgb8)')
    parser.add_argument('--keep-freed-memory', action='store_true',
                        help='node and camera call seg_kd_ros.process_memory.keep_freed_memory()')
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args()
    if args.duration < 2 * WINDOW_S:
        parser.error(f'--duration must be at least {2 * WINDOW_S:.0f} s (RSS windows)')
    if args.model is not None and not args.model.is_file():
        parser.error(f'--model {args.model}: no such file')
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_student(args.student, Path(tmp) / f'{args.student}.onnx')
        result = measure(model, args.rate, args.duration, parse_size(args.size), Path(tmp),
                         args.keep_freed_memory)
    load = os.getloadavg()
    result.update(model=str(args.model or f'{args.student} (random weights, 1024x512)'),
                  rate_hz=args.rate, duration_s=args.duration, size=args.size,
                  keep_freed_memory=args.keep_freed_memory, load_before=load_before,
                  load_after=load)
    verdict = 'met' if result['p99_per_inference'] <= 2.0 else 'MISSED'
    print(f"{result['model']} on ONNX Runtime (CPU); {args.size} rgb8 at {args.rate:g} Hz for "
          f'{args.duration:g} s; shipped DDS profile; load average (1 min) '
          f'{load_before[0]:.1f} before, {load[0]:.1f} after')
    print(f"frames: {result['sent']} sent, {result['received']} received by the node, "
          f"{result['processed']} processed ({result['output_hz']:.2f} Hz), {result['dropped']} "
          f"dropped (replaced by a newer frame), {result['lost']} lost; "
          f"{result['late_ticks']} camera ticks late")
    print(f"e2e p50 {result['e2e_p50']:.0f} ms, p99 {result['e2e_p99']:.0f} ms, max "
          f"{result['e2e_max']:.0f} ms; inference p50 {result['inference_p50']:.0f} ms, p99 "
          f"{result['inference_p99']:.0f} ms; e2e p99 / inference p50 = "
          f"{result['p99_per_inference']:.2f} (goal <= 2: {verdict})")
    print(f"node RSS: first {WINDOW_S:.0f} s {result['rss_first_mb']:.1f} MB, last "
          f"{WINDOW_S:.0f} s {result['rss_last_mb']:.1f} MB, change "
          f"{result['rss_change_mb']:+.1f} MB, max {result['rss_max_mb']:.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
