"""Latency of segmenter_node over DDS, stage by stage, beside the raw DDS round trip.

Camera frames of each size and encoding go into a node whose network is `--network` (default
1024x512, the tiny model: a 1x1 convolution with the real deploy head, short and steady): the node
resizes them to it and the outputs back. The sizes take turns, one frame at a time (20 ms apart),
each sent once to an echo and once to the node, so that a change in the load of a shared machine
reaches every figure of the run alike. Per frame size:
- e2e: publish of a frame -> its labels received (median, p99);
- rtt: raw DDS round trip of the same frame message between two rclpy processes (an echo), the
  transport floor;
- overhead: median over frames of (e2e - that frame's graph run), what the node adds to the model;
  the goal is overhead <= 0.5 rtt for a frame at the network size and <= 1 rtt at 1920x1080;
- with --stages, the median of every stage of the node's frame path: transport in (publish ->
  the node's subscription callback), queue (callback -> worker), conversion (the message to RGB),
  resize, inference, resize back, threshold, labels to a message, serialisation and publish of the
  labels, transport out (-> the probe's callback), other (e2e minus those, per frame); then the
  confidence's conversion and publish, which come after the labels are out.

The node is the real `segmenter_node.main()` in its own process, with bench/node_stages.py's
recorder, which times the functions `_process` calls and writes one JSON line per frame; the probe
joins those lines with its own publish and receive times by the frame's stamp.

Usage: python bench/node_latency.py --stages [--network 1024x512]
           [--sizes 1024x512,1920x1080:bgr8,2048x1024] [--frames 60] [--classes 2]
           [--poll busy|block] [--model FILE.onnx] [--keep-freed-memory] [--json FILE]
--poll busy (default) waits for each reply in 1 ms slices, which also keeps the CPUs of a VM from
idling between frames (as a camera pipeline at full rate does); --poll block sleeps until the
reply arrives, so every hop pays the wake-up of an idle CPU (tens of ms on a shared VM).
Every rclpy process runs on the loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in
ROS_DOMAIN_ID (default 73), with the shipped Fast DDS profile (config/fastdds_shm.xml).
"""

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
import uuid

from node_stages import (
    KEEP_MEMORY_ENV,
    STAGES_ENV,
    bench_env,
    build_tiny_model,
    frame,
    memory_setting,
    parse_size,
    start_node,
    stop,
)
import numpy as np

# busy: wait for replies in 1 ms slices, which also keeps this VM's CPUs from idling (a waking
# idle vCPU costs tens of ms here); block: sleep in the DDS wait set until the reply arrives.
POLL_S = {'busy': 0.001, 'block': 1.0}
# what the node does to a frame, in order; (name in the table, key in a node record)
STAGES = (('transport in', 'transport_in'), ('queue', 'queue'), ('conversion', 'conversion'),
          ('resize', 'resize_ms'), ('inference', 'inference_ms'),
          ('resize back', 'resize_back_ms'), ('threshold', 'postprocess_ms'),
          ('labels to msg', 'labels_msg'), ('publish labels', 'labels_publish'),
          ('transport out', 'transport_out'))
AFTER_LABELS = (('confidence to msg', 'confidence_msg'),
                ('publish confidence', 'confidence_publish'))


# --- child processes of a measurement (rclpy) ------------------------------------------------
def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def run_echo(namespace: str) -> int:
    """Republish every `<ns>/ping` Image on `<ns>/pong` until interrupted."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image
    memory_setting()
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
    """Publish a frame, spin until the reply with its stamp arrives; return the times."""

    def __init__(self, node, out_topic: str, in_topic: str) -> None:
        from sensor_msgs.msg import Image
        self.node, self.in_topic = node, in_topic
        self.pub = node.create_publisher(Image, out_topic, _qos())
        self.reply, self.reply_at = None, 0.0
        node.create_subscription(Image, in_topic, self._on_reply, _qos())
        self.poll_s = POLL_S[os.environ.get('SEG_KD_BENCH_POLL', 'busy')]

    def _on_reply(self, msg) -> None:
        self.reply, self.reply_at = msg, time.perf_counter()

    def wait_matched(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.pub.get_subscription_count() > 0
                    and self.node.count_publishers(self.in_topic) > 0):
                return
            time.sleep(0.1)
        raise RuntimeError(f'no peer on {self.pub.topic_name} / {self.in_topic}')

    def once(self, executor, msg, timeout: float = 60.0) -> list:
        """[stamp, sent, received] (perf_counter s) of one frame."""
        msg.header.stamp = stamp = self.node.get_clock().now().to_msg()
        self.reply = None
        start = time.perf_counter()
        self.pub.publish(msg)
        deadline = time.monotonic() + timeout
        while self.reply is None or self.reply.header.stamp != stamp:
            executor.spin_once(timeout_sec=self.poll_s)
            if time.monotonic() > deadline:
                raise RuntimeError(f'no reply on {self.in_topic} within {timeout} s')
        time.sleep(0.02)  # let both sides go idle: one frame at a time
        return [[stamp.sec, stamp.nanosec], start, self.reply_at]


def frame_message(spec: str):
    """The Image message of a frame spec 'WxH:encoding' (random pixels, rgb8 or bgr8)."""
    import cv2

    from seg_kd_ros.image_conversion import numpy_to_imgmsg
    size, encoding = spec.split(':')
    pixels = frame(*parse_size(size))
    if encoding == 'bgr8':
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    msg = numpy_to_imgmsg(pixels, encoding)
    msg.header.frame_id = 'bench'
    return msg


def run_measure(model: str, specs: list[str], frames: int, warmup: int = 5) -> int:
    """Round trips and node latencies, frame sizes interleaved; print one JSON line.

    Each round sends every frame size once to the echo and once to the node, so a change in
    the load of a shared machine reaches every figure of the run alike.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    memory_setting()
    messages = {spec: frame_message(spec) for spec in specs}
    ns = f'/bench_{uuid.uuid4().hex[:8]}'
    env = dict(os.environ)
    echo = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), '--echo', ns],
                            env=env)
    node_proc = start_node(model, ns, env, {'qos_reliability': 'reliable'})
    rclpy.init()
    node = rclpy.create_node('bench_probe')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    result = {spec: {'rtt': [], 'e2e': []} for spec in specs}
    try:
        rtt = Timer(node, f'{ns}/ping', f'{ns}/pong')
        seg = Timer(node, f'{ns}/image', f'{ns}/segmenter/labels')
        rtt.wait_matched()
        seg.wait_matched()
        for i in range(warmup + frames):
            for spec, msg in messages.items():
                rtt_record, e2e_record = rtt.once(executor, msg), seg.once(executor, msg)
                if i >= warmup:
                    result[spec]['rtt'].append(rtt_record)
                    result[spec]['e2e'].append(e2e_record)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for proc in (echo, node_proc):
            stop(proc)
    print(json.dumps(result))
    return 0


# --- main ------------------------------------------------------------------------------------
def join_records(e2e: list, stage_lines: list[str]) -> list[dict]:
    """One dict per timed frame: e2e, the node's stages and the transports, in ms."""
    by_stamp = {tuple(r['stamp']): r for r in map(json.loads, stage_lines)}
    frames = []
    for stamp, sent, received in e2e:
        rec = by_stamp.get(tuple(stamp))
        if rec is None:
            continue
        row = {key: rec.get(key, 0.0) for _, key in STAGES + AFTER_LABELS if key in rec}
        row.update(e2e=(received - sent) * 1e3, transport_in=(rec['arrived'] - sent) * 1e3,
                   queue=(rec['start'] - rec['arrived']) * 1e3,
                   transport_out=(received - rec['labels_out']) * 1e3)
        row['overhead'] = row['e2e'] - row['inference_ms']
        row['other'] = row['e2e'] - sum(row[key] for _, key in STAGES)
        frames.append(row)
    return frames


def measure(model: Path, specs: list[str], frames: int, poll: str, tmp: Path,
            keep_memory: bool = False) -> dict:
    """Run the measurement child; return, per frame spec, the round trips and frame records."""
    stages_file = tmp / 'stages.jsonl'
    stages_file.unlink(missing_ok=True)
    env = bench_env() | {'SEG_KD_BENCH_POLL': poll, STAGES_ENV: str(stages_file),
                         KEEP_MEMORY_ENV: '1' if keep_memory else ''}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), '--frames', str(frames), '--measure',
         str(model), ','.join(specs)], env=env, stdout=subprocess.PIPE, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit('the measurement failed (its output is above)')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    lines = stages_file.read_text().splitlines()
    measured = {}
    for spec in specs:
        records = join_records(result[spec]['e2e'], lines)
        if len(records) < frames:
            raise SystemExit(f'{spec}: the node recorded {len(records)} of {frames} frames')
        measured[spec] = {'rtt': [(received - sent) * 1e3
                                  for _, sent, received in result[spec]['rtt']],
                          'frames': records}
    return measured


def summary(measured: dict) -> dict:
    """Medians of every stage, e2e p50/p99, rtt p50/p99, overhead and overhead / rtt."""
    frames = measured['frames']
    out = {key: float(np.median([f[key] for f in frames]))
           for _, key in STAGES + AFTER_LABELS + (('', 'other'), ('', 'e2e'), ('', 'overhead'))}
    out['e2e_p99'] = float(np.percentile([f['e2e'] for f in frames], 99))
    out['rtt'] = float(np.median(measured['rtt']))
    out['rtt_p99'] = float(np.percentile(measured['rtt'], 99))
    out['overhead_per_rtt'] = out['overhead'] / out['rtt']
    return out


def print_table(columns: dict[str, dict], stages: bool) -> None:
    """One row per figure, one column per frame size."""
    names = list(columns)
    rows = [('e2e p50', 'e2e'), ('e2e p99', 'e2e_p99'), ('rtt p50', 'rtt'),
            ('rtt p99', 'rtt_p99'), ('overhead p50', 'overhead'),
            ('overhead / rtt', 'overhead_per_rtt')]
    if stages:
        rows = list(STAGES) + [('other (e2e - stages)', 'other')] + list(AFTER_LABELS) + rows
    print('| ms | ' + ' | '.join(names) + ' |')
    print('|---|' + '---|' * len(names))
    for label, key in rows:
        digits = 2 if key == 'overhead_per_rtt' else 1
        print(f'| {label} | ' + ' | '.join(f'{columns[n][key]:.{digits}f}' for n in names) + ' |')


def main() -> int:
    """Measure every frame size; print the table (and write JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--network', default='1024x512', help='network input WxH')
    parser.add_argument('--sizes', default='1024x512,1920x1080:bgr8,2048x1024',
                        help='frames, WxH[:encoding] (rgb8 or bgr8; default rgb8)')
    parser.add_argument('--frames', type=int, default=60, help='timed frames per size')
    parser.add_argument('--classes', type=int, default=2,
                        help='classes of the tiny model (default 2: a short, steady run, so the '
                        "node's own cost stands out on a loaded CPU; 19 for Cityscapes')")
    parser.add_argument('--model', type=Path, help='a model file instead of the tiny model')
    parser.add_argument('--stages', action='store_true', help='print the median of each stage')
    parser.add_argument('--poll', choices=tuple(POLL_S), default='busy',
                        help='how the probe waits for replies (see POLL_S)')
    parser.add_argument('--keep-freed-memory', action='store_true',
                        help='every process (node, echo, probe) calls seg_kd_ros.'
                        'process_memory.keep_freed_memory() first (glibc keeps freed frame '
                        'buffers for reuse; see that module)')
    parser.add_argument('--json', type=Path, help='also write the figures here')
    parser.add_argument('--echo', metavar='NS', help=argparse.SUPPRESS)
    parser.add_argument('--measure', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        return run_echo(args.echo)
    if args.measure:
        return run_measure(args.measure[0], args.measure[1].split(','), args.frames)

    specs = []
    for spec in args.sizes.split(','):
        size, _, encoding = spec.partition(':')
        if (encoding or 'rgb8') not in ('rgb8', 'bgr8'):
            parser.error(f'--sizes: encoding must be rgb8 or bgr8, got {encoding!r}')
        specs.append(f"{'x'.join(map(str, parse_size(size)))}:{encoding or 'rgb8'}")
    if args.model is not None and not args.model.is_file():
        parser.error(f'--model {args.model}: no such file')
    net_w, net_h = parse_size(args.network)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_tiny_model(Path(tmp) / 'tiny.onnx', net_w, net_h,
                                               args.classes)
        measured = measure(model, specs, args.frames, args.poll, Path(tmp),
                           args.keep_freed_memory)
    columns = {spec.replace(':', ' '): summary(m) for spec, m in measured.items()}
    load = os.getloadavg()
    what = args.model.name if args.model else f'tiny model ({args.classes} classes)'
    memory = '; keep_freed_memory() in every process' if args.keep_freed_memory else ''
    print(f'{what}, network {net_w}x{net_h}; poll={args.poll}; shipped DDS profile{memory}; '
          f'{args.frames} frames per size, sizes interleaved, one frame at a time, 20 ms apart; '
          f'ms, medians unless marked; load average (1 min) {load_before[0]:.1f} before, '
          f'{load[0]:.1f} after')
    print_table(columns, args.stages)
    if args.json:
        args.json.write_text(json.dumps({'network': args.network, 'poll': args.poll,
                                         'keep_freed_memory': args.keep_freed_memory,
                                         'frames': args.frames, 'load_before': load_before,
                                         'load_after': load, 'sizes': columns}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
