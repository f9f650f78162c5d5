"""Overload: a 30 Hz camera into a model slower than that.

The node must process the newest frame only: latency stays bounded by a few inference times
(a queue would grow by one inference time per frame), stale frames are counted as dropped, and the
node's memory stays flat (a queue of 640x480 frames would grow by ~0.9 MB per frame).
"""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from node_harness import NodeProcess, Probe, make_image, node_args, unique_namespace
import numpy as np
import psutil
from rclpy.time import Time
from sensor_msgs.msg import Image
from tiny_models import make_tiny_onnx

RATE_HZ = 30.0
DURATION_S = 6.0
IMG_H, IMG_W = 480, 640


def test_slow_model_keeps_latency_bounded_counts_drops_and_memory_flat(tmp_path):
    # About 75 ms a frame on an idle 2-core machine: slower than the camera however fast the CPU.
    model = make_tiny_onnx(tmp_path / 'slow.onnx', 128, 256, slow_layers=16, slow_channels=64)
    ns = unique_namespace('overload')
    node = NodeProcess(node_args(model, ns, {'qos_reliability': 'reliable'}),
                       tmp_path / 'node.log')
    probe = Probe()
    try:
        node.wait_ready()
        name = f'{ns}/segmenter'
        latencies = []  # (arrival time s since start, end-to-end latency s)
        start = time.monotonic()

        def on_labels(msg):
            now = probe.node.get_clock().now()
            latencies.append((time.monotonic() - start,
                              (now - Time.from_msg(msg.header.stamp)).nanoseconds / 1e9))
        probe.node.create_subscription(Image, f'{name}/labels', on_labels, 10)
        probe.subscribe('/diagnostics', DiagnosticArray)
        publisher = probe.publisher(f'{ns}/image', Image)
        probe.wait_matched(publisher, [f'{name}/labels'])
        msg = probe.image_msg(make_image(IMG_H, IMG_W))
        process = psutil.Process(node.pid)
        rss = {}

        def sample_rss():
            time.sleep(2.0)
            rss['early'] = process.memory_info().rss
        sampler = threading.Thread(target=sample_rss)
        start = time.monotonic()
        sampler.start()
        sent = 0
        while time.monotonic() - start < DURATION_S:
            msg.header = probe.header()
            publisher.publish(msg)
            sent += 1
            time.sleep(max(0.0, sent / RATE_HZ - (time.monotonic() - start)))
        sampler.join()
        rss['late'] = process.memory_info().rss
        values = probe.diagnostics(
            name, lambda v: int(v['frames_received']) >= 0.8 * sent and int(v['frames_received'])
            == int(v['frames_published']) + int(v['frames_dropped']))
        assert node.alive(), node.output()
    finally:
        probe.close()
        code = node.stop()
    assert code == 0, node.output()

    infer_p99_s = float(values['latency_inference_p99_ms']) / 1e3
    infer_p50_s = float(values['latency_inference_p50_ms']) / 1e3
    assert infer_p50_s > 1.0 / RATE_HZ, f'model not slower than the camera: {values}'
    assert int(values['frames_dropped']) > 0
    assert int(values['frames_published']) < sent
    assert int(values['frames_rejected']) == 0
    late = [lat for t, lat in latencies if t > DURATION_S / 2]
    assert len(late) >= 3, latencies
    bound = 3 * infer_p99_s + 1.0
    assert max(late) < bound, f'latency grows: max {max(late):.2f} s > {bound:.2f} s'
    early = [lat for t, lat in latencies if t <= DURATION_S / 2]
    assert np.median(late) < np.median(early) + 0.5 + infer_p99_s, (early, late)
    growth_mb = (rss['late'] - rss['early']) / 2**20
    assert growth_mb < 30, f'node memory grew by {growth_mb:.1f} MiB'
