"""The segmenter node over DDS: a `.pt2` on the PyTorch backend, labels against ONNX Runtime CPU.

Run by `part_runtime` in a process whose Python can import rclpy (the machine's own, or the
carried ROS 2 wheels installed into a prefix). The node is its own process, started as
`ros2 run` would (its `main` with `--ros-args`), in a namespace of its own; this process
publishes frames at the network size and matches each labels image by its stamp. Writes one
JSON object to `--out`.
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

TEST_DIR = Path(__file__).resolve().parents[2] / 'test'


def main() -> int:
    """Start the node, send the frames, compare, write the result; exit 0 unless it broke."""
    parser = argparse.ArgumentParser(prog='bench.gpu_check.node_dds')
    parser.add_argument('--model', type=Path, required=True, help='.pt2 file')
    parser.add_argument('--onnx', type=Path, required=True, help='the same model as .onnx')
    parser.add_argument('--device', required=True)
    parser.add_argument('--frames', type=int, default=5)
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--log', type=Path, required=True, help="the node's own log")
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args()

    sys.path.insert(0, str(TEST_DIR))  # the node tests' harness: one way to drive the node
    from node_harness import NodeProcess, Probe, node_env, unique_namespace
    from sensor_msgs.msg import Image

    from bench.gpu_check.common import agreement, frames, latency
    from seg_kd_ros.backends import create_backend
    from seg_kd_ros.image_conversion import imgmsg_to_numpy

    reference = create_backend(args.onnx, 'onnxruntime', 'cpu')
    height, width = reference.metadata.input_size
    images = frames(args.frames, height, width, seed=7)
    ref_labels, _ = reference.infer(images)
    namespace = unique_namespace('gpu_check')
    command = [sys.executable, '-c',
               'import sys; from seg_kd_ros.segmenter_node import main; sys.exit(main())',
               '--ros-args', '-r', f'__ns:={namespace}', '-p', f'model_path:={args.model}',
               '-p', 'backend:=torch', '-p', f'device:={args.device}',
               '-p', 'output_resolution:=network', '-p', 'confidence_threshold:=0.0']
    result: dict = {'namespace': namespace, 'device': args.device, 'frames': args.frames}
    started = time.monotonic()
    node = NodeProcess(command, args.log, env=node_env())
    probe = None
    try:
        node.wait_ready(args.timeout)
        result['node_start_s'] = round(time.monotonic() - started, 1)
        probe = Probe('gpu_check')
        topic = f'{namespace}/segmenter/labels'
        probe.subscribe(topic, Image)
        publisher = probe.publisher(f'{namespace}/image', Image)
        probe.wait_matched(publisher, [topic], timeout=args.timeout)
        labels, round_trip = [], []
        for image in images:
            msg = probe.image_msg(image)
            sent = time.perf_counter()
            got = probe.request(publisher, msg, topic, timeout=args.timeout)
            round_trip.append((time.perf_counter() - sent) * 1e3)
            labels.append(np.array(imgmsg_to_numpy(got)))
        result['agreement_pct'] = agreement(np.stack(labels), ref_labels)
        result['round_trip'] = latency(np.asarray(round_trip[1:] or round_trip))
        result['node_log_tail'] = node.output()[-600:]
    finally:
        if probe is not None:
            probe.close()
        code = node.stop()
        reference.close()
    result['node_exit_code'] = code
    args.out.write_text(json.dumps(result, indent=1))
    return 0 if code == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
