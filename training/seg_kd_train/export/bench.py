"""Latency, throughput and memory of the students on every backend this machine has.

Backends: PyTorch eager (CUDA if available, else CPU), ONNX Runtime CPU, ONNX Runtime CUDA (when
onnxruntime has the CUDA execution provider), TensorRT fp16 / int8 (when tensorrt, cuda-python and
a GPU are present; int8 also needs calibration data). Each runs the deploy head (normalisation +
network + argmax + confidence) at batch 1 on a fixed uint8 frame at the network size: PyTorch the
`DeployHead` module, the others the model file through the node's own backend
(`seg_kd_ros.backends`); weights are random (latency does not depend on them). Timings: `warmup`
untimed runs, then `iters` timed ones; median and p99 in ms, FPS = 1000 / median. Every
measurement runs in a fresh process (spawned), so one backend's memory never counts against
another's. Memory: CPU backends report that process's peak RSS (`VmHWM`: the interpreter and
libraries included, since that is what a deployment pays); PyTorch CUDA reports
`torch.cuda.max_memory_allocated`; ONNX Runtime CUDA and TensorRT report none (their allocators
are not visible from here).
"""

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
import gc
import importlib.util
import json
import logging
import multiprocessing
from pathlib import Path
import tempfile
import time

import numpy as np

LOG = logging.getLogger(__name__)
BACKENDS = ('torch', 'ort-cpu', 'ort-cuda', 'trt-fp16', 'trt-int8')


@dataclass
class BenchRow:
    """One model x backend x size measurement (or the reason it was skipped)."""

    model: str
    backend: str
    device: str
    height: int
    width: int
    params_m: float
    median_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    peak_mem_mib: float | None = None
    mem_kind: str = ''
    skipped: str = ''


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux's `VmHWM` (high-water mark of this address space); not `ru_maxrss`, which Linux carries
    over from the parent across fork + exec. Elsewhere: the current RSS (psutil).
    """
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss / (1 << 20)


def time_runs(fn: Callable[[], object], warmup: int, iters: int,
              sync: Callable[[], None] = lambda: None) -> np.ndarray:
    """Per-run wall times in ms of `fn` (after `warmup` untimed runs)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return np.asarray(times)


def fill_timing(row: BenchRow, times: np.ndarray) -> BenchRow:
    """Set median, p99 and FPS from run times in ms."""
    row.median_ms = float(np.median(times))
    row.p99_ms = float(np.percentile(times, 99))
    row.fps = 1000.0 / row.median_ms
    return row


def available_backends() -> dict[str, str]:
    """Backend name -> '' if it can run here, else the reason it cannot."""
    import onnxruntime as ort
    import torch

    status = {'torch': '', 'ort-cpu': ''}
    cuda_ep = 'CUDAExecutionProvider' in ort.get_available_providers()
    status['ort-cuda'] = '' if cuda_ep else 'onnxruntime has no CUDAExecutionProvider'
    missing = [m for m in ('tensorrt', 'cuda') if importlib.util.find_spec(m) is None]
    if missing:
        trt_reason = f"not installed: {', '.join(missing)}"
    else:
        trt_reason = '' if torch.cuda.is_available() else 'no CUDA GPU'
    status['trt-fp16'] = status['trt-int8'] = trt_reason
    return status


def bench_torch(head, row: BenchRow, image, warmup: int, iters: int) -> BenchRow:
    """PyTorch eager, on CUDA when available."""
    import torch

    if torch.cuda.is_available():
        row.device, row.mem_kind = 'cuda', 'torch.cuda.max_memory_allocated'
        head, image = head.cuda(), image.cuda()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            times = time_runs(lambda: head(image), warmup, iters, torch.cuda.synchronize)
        row.peak_mem_mib = torch.cuda.max_memory_allocated() / (1 << 20)
        head.cpu()
        return fill_timing(row, times)
    row.device, row.mem_kind = 'cpu', 'peak RSS of the process'
    with torch.inference_mode():
        times = time_runs(lambda: head(image), warmup, iters)
    row.peak_mem_mib = peak_rss_mib()
    return fill_timing(row, times)


def bench_ort(onnx_path: Path, row: BenchRow, frame: np.ndarray, warmup: int, iters: int,
              cuda: bool, threads: int = 0) -> BenchRow:
    """ONNX Runtime through the node's backend, CPU or CUDA (inputs and outputs on the host)."""
    from seg_kd_ros.backends import create_backend

    row.device = 'cuda' if cuda else 'cpu'
    backend = create_backend(onnx_path, 'onnxruntime', row.device, threads=threads)
    times = time_runs(lambda: backend.infer(frame), warmup, iters)
    if not cuda:
        row.peak_mem_mib, row.mem_kind = peak_rss_mib(), 'peak RSS of the process'
    return fill_timing(row, times)


def bench_tensorrt(onnx_path: Path, row: BenchRow, frame: np.ndarray, warmup: int, iters: int,
                   precision: str, engine_dir: Path, calib_data: Path | None) -> BenchRow:
    """TensorRT through the node's backend (uint8 frame in, GPU pre-processing included)."""
    from seg_kd_ros.backends.tensorrt_backend import TensorRTBackend
    from seg_kd_train.export.tensorrt_engine import build

    row.device = 'cuda'
    engine = engine_dir / f'{onnx_path.stem}.{precision}.engine'
    build(onnx_path, engine, precision, calib_data=calib_data, rebuild=True)
    backend = TensorRTBackend(engine, 'cuda')
    try:
        times = time_runs(lambda: backend.infer(frame), warmup, iters)
    finally:
        backend.close()
    return fill_timing(row, times)


def measure(row: BenchRow, onnx_path: Path | None, warmup: int, iters: int,
            engine_dir: Path, calib_data: Path | None, threads: int) -> BenchRow:
    """Measure one row; meant to run alone in a fresh process (torch imported only for torch)."""
    frame = np.random.default_rng(0).integers(0, 256, (1, row.height, row.width, 3),
                                              dtype=np.uint8)
    if row.backend == 'torch':
        import torch

        from seg_kd_train.export.deploy_head import DeployHead
        from seg_kd_train.models import build_model

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(0)
        head = DeployHead(build_model(row.model)).eval()
        return bench_torch(head, row, torch.from_numpy(frame), warmup, iters)
    if row.backend.startswith('ort-'):
        return bench_ort(onnx_path, row, frame, warmup, iters, cuda=row.backend == 'ort-cuda',
                         threads=threads)
    return bench_tensorrt(onnx_path, row, frame, warmup, iters, row.backend.split('-')[1],
                          engine_dir, calib_data)


def run_bench(models: list[str], sizes: list[tuple[int, int]], backends: list[str],
              warmup: int = 3, iters: int = 20, engine_dir: Path | None = None,
              calib_data: Path | None = None, threads: int = 0,
              log: Callable[[str], None] = print) -> list[BenchRow]:
    """Measure every model x size x backend; unavailable backends give skipped rows.

    The ONNX files are exported here; each measurement runs in its own spawned process.
    """
    from seg_kd_train.export.deploy_head import DeployHead, build_metadata
    from seg_kd_train.export.onnx_export import export_onnx
    from seg_kd_train.models import build_model, count_parameters

    status = available_backends()
    context = multiprocessing.get_context('spawn')
    rows = []
    with tempfile.TemporaryDirectory(prefix='seg_kd_bench_') as tmp:
        engine_dir = Path(engine_dir or tmp)
        for name in models:
            model = build_model(name).eval()
            params_m = round(count_parameters(model) / 1e6, 2)
            for height, width in sizes:
                onnx_path = None
                for backend in backends:
                    row = BenchRow(name, backend, '', height, width, params_m)
                    if status.get(backend):
                        row.skipped = status[backend]
                    elif backend == 'trt-int8' and calib_data is None:
                        row.skipped = 'no --calib-data for INT8 calibration'
                    else:
                        if backend != 'torch' and onnx_path is None:
                            onnx_path = Path(tmp) / f'{name}_{height}x{width}.onnx'
                            export_onnx(DeployHead(model).eval(), onnx_path,
                                        build_metadata(name, model.num_classes, (height, width)))
                        with ProcessPoolExecutor(1, mp_context=context) as pool:
                            row = pool.submit(measure, row, onnx_path, warmup, iters, engine_dir,
                                              calib_data, threads).result()
                    rows.append(row)
                    log(format_row(row))
            del model
            gc.collect()
    return rows


def format_row(row: BenchRow) -> str:
    """One Markdown table line."""
    def num(v, fmt):
        return format(v, fmt) if v is not None else '-'

    return (f'| {row.model} | {row.backend} | {row.device or "-"} | {row.height}x{row.width} | '
            f'{row.params_m:.2f} | {num(row.median_ms, ".1f")} | {num(row.p99_ms, ".1f")} | '
            f'{num(row.fps, ".1f")} | {num(row.peak_mem_mib, ".0f")} | '
            f'{row.skipped or row.mem_kind} |')


TABLE_HEADER = ('| model | backend | device | input (HxW) | params (M) | median (ms) | p99 (ms) | '
                'FPS | peak mem (MiB) | note |\n|---|---|---|---|---|---|---|---|---|---|')


def write_results(rows: list[BenchRow], out_dir: Path, environment: dict) -> tuple[Path, Path]:
    """Write `bench.json` and `bench.md` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / 'bench.json', out_dir / 'bench.md'
    json_path.write_text(json.dumps({'environment': environment,
                                     'rows': [asdict(r) for r in rows]}, indent=2))
    env = ', '.join(f'{k}: {v}' for k, v in environment.items())
    md_path.write_text(f'# seg-kd bench\n\n{env}\n\n{TABLE_HEADER}\n'
                       + '\n'.join(format_row(r) for r in rows) + '\n\n' + __doc__.split(
                           '\n\n', 1)[1])
    return json_path, md_path
