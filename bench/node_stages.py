"""The segmenter node as a bench process, with a per-frame stage recorder; the benches' models.

`start_node` runs this file, which calls the node's own `segmenter_node.main()`; when
`SEG_KD_BENCH_STAGES` names a file, it first wraps the functions `SegmenterNode._process` calls
(looked up at call time, so the node's code runs unchanged) with `time.perf_counter` timers and
appends one JSON line per frame to that file, after the frame is done. `perf_counter` is
CLOCK_MONOTONIC on Linux, one clock for every process of the host, so a probe can join its own
publish and receive times with the node's by the frame's stamp.

Used by bench/node_latency.py, bench/node_realtime.py and bench/resize_placement.py.
"""

from collections import OrderedDict
from dataclasses import asdict
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np

from seg_kd_ros.dds_profile import PROFILE_VARIABLES, profile_variable, shipped_dds_profile

STAGES_ENV = 'SEG_KD_BENCH_STAGES'
KEEP_MEMORY_ENV = 'SEG_KD_BENCH_KEEP_MEMORY'


def bench_env() -> dict:
    """Environment of every child: loopback DDS, our domain, the shipped Fast DDS profile."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', '73')
    env['PYTHONUNBUFFERED'] = '1'
    for var in PROFILE_VARIABLES:
        env.pop(var, None)
    env[profile_variable()] = str(shipped_dds_profile())  # the node would choose the same
    return env


def frame(width: int, height: int) -> np.ndarray:
    """A random uint8 HxWx3 frame (the same one for every run)."""
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height); a malformed size ends the bench with one line."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SystemExit(f'size {text!r}: give WIDTHxHEIGHT in pixels, e.g. 1024x512') from None
    if width <= 0 or height <= 0:
        raise SystemExit(f'size {text!r}: width and height must be > 0')
    return width, height


def build_tiny_model(path: Path, width: int, height: int, classes: int) -> Path:
    """A 1x1 convolution (RGB -> class logits) with the real deploy head, at width x height.

    Its run is short and steady, so the node's own cost stands out on a loaded CPU; the head
    (normalisation, argmax, confidence) is `attach_deploy_head`'s, as in every exported model.
    """
    from onnx import TensorProto, helper, numpy_helper

    from seg_kd_train.export.metadata import build_metadata
    from seg_kd_train.export.onnx_head import attach_deploy_head, save_model_file

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1.0, (classes, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(0, 0.5, (classes,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'w', 'b'], ['logits'])], 'bench_tiny',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, classes, height, width])],
        [numpy_helper.from_array(weight, 'w'), numpy_helper.from_array(bias, 'b')])
    network = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    network.ir_version = 9
    meta = build_metadata('bench_tiny', classes, (height, width))
    return save_model_file(attach_deploy_head(network, 'logits', meta, source=str(path)), path)


def export_student(name: str, path: Path, input_size: tuple[int, int] = (512, 1024)) -> Path:
    """Write `name` (19 classes) as a model file at `input_size` (height, width); return it.

    Its weights are seeded random ones (they do not change the timing); the file is what
    `seg-kd export` writes (`export_onnx`: the network, then the deploy head).
    """
    import torch

    from seg_kd_train.export.deploy_head import DeployHead
    from seg_kd_train.export.metadata import build_metadata
    from seg_kd_train.export.onnx_export import export_onnx
    from seg_kd_train.models import build_model

    torch.manual_seed(0)
    head = DeployHead(build_model(name, 19)).eval()
    return export_onnx(head, path, build_metadata(name, 19, input_size))


# --- the node, with a per-frame stage recorder -----------------------------------------------
def install_stage_recorder(path: str) -> None:
    """Time each step of `SegmenterNode._process`; append one JSON line per frame to `path`.

    Wraps the module functions the node calls (looked up at call time) and the publisher, so the
    node's own code runs unchanged; records are written after the frame is done.
    """
    from rclpy.publisher import Publisher

    from seg_kd_ros import segmenter_node as sn

    # arrivals: written by the executor thread, read by the worker; OrderedDict's single calls
    # are atomic under the GIL (iterating a dict another thread changes is not)
    clock, out, arrivals, rec = time.perf_counter, open(path, 'a', buffering=1), OrderedDict(), {}

    def timed(fn, key_before, key_after):
        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                key = key_after if 'labels_out' in rec else key_before
                rec[key] = rec.get(key, 0.0) + (clock() - start) * 1e3
        return wrapper

    for name, before, after in (('imgmsg_to_rgb', 'conversion', 'conversion'),
                                ('numpy_to_imgmsg', 'labels_msg', 'confidence_msg'),
                                ('confidence_to_mono8', 'labels_msg', 'confidence_msg')):
        if not hasattr(sn, name):
            raise SystemExit(f'segmenter_node no longer calls {name}: update {__file__}')
        setattr(sn, name, timed(getattr(sn, name), before, after))
    publish, run = Publisher.publish, sn.SegmentationPipeline.run
    on_frame, process = sn.SegmenterNode._on_frame, sn.SegmenterNode._process

    def timed_publish(self, msg):
        if threading.current_thread().name != 'segmenter_worker':
            return publish(self, msg)  # diagnostics, class names
        start = clock()
        publish(self, msg)
        end = clock()
        key = 'confidence_publish' if 'labels_out' in rec else 'labels_publish'
        rec[key] = rec.get(key, 0.0) + (end - start) * 1e3
        rec.setdefault('labels_out', end)

    def timed_run(self, *args, **kwargs):
        result = run(self, *args, **kwargs)
        rec.update(asdict(result.stages))
        return result

    def timed_on_frame(self, msg):
        arrivals[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = clock()
        if len(arrivals) > 64:  # frames the node dropped are never processed: forget them
            arrivals.popitem(last=False)
        on_frame(self, msg)

    def timed_process(self, msg):
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        rec.clear()
        rec['start'] = clock()
        process(self, msg)
        rec['end'] = clock()
        out.write(json.dumps({'stamp': stamp, 'arrived': arrivals.pop(stamp, math.nan), **rec})
                  + '\n')

    Publisher.publish, sn.SegmentationPipeline.run = timed_publish, timed_run
    sn.SegmenterNode._on_frame, sn.SegmenterNode._process = timed_on_frame, timed_process


def memory_setting() -> None:
    """Call `keep_freed_memory()` in this process when KEEP_MEMORY_ENV is set."""
    if os.environ.get(KEEP_MEMORY_ENV):
        from seg_kd_ros.process_memory import keep_freed_memory
        if not keep_freed_memory():
            raise SystemExit('keep_freed_memory: this C library has no mallopt')


def run_node(args: list[str]) -> int:
    """The segmenter node's own main(), with the stage recorder when STAGES_ENV names a file."""
    if os.environ.get(STAGES_ENV):
        install_stage_recorder(os.environ[STAGES_ENV])
    memory_setting()
    from seg_kd_ros.segmenter_node import main
    return main(['segmenter_node'] + args)


def start_node(model: str, namespace: str, env: dict, params: dict | None = None,
               log=subprocess.DEVNULL) -> subprocess.Popen:
    """Start the node in `namespace` as its own process (see `run_node`)."""
    args = ['--ros-args', '-r', f'__ns:={namespace}', '-p', f'model_path:={model}']
    for key, value in (params or {}).items():
        args += ['-p', f'{key}:={value}']
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve())] + args,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """SIGINT, then kill after 20 s."""
    proc.send_signal(2)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == '__main__':
    if not sys.argv[1:]:  # `make bench` runs every bench/*.py: this one only serves the others
        print('bench/node_stages.py: used by bench/node_latency.py, node_realtime.py and '
              'resize_placement.py')
        raise SystemExit(0)
    raise SystemExit(run_node(sys.argv[1:]))
