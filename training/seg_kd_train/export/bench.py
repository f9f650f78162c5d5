"""Latency, throughput and memory of the students on every backend this machine has.

Backends: PyTorch eager (CUDA if available, else CPU), ONNX Runtime CPU, ONNX Runtime CUDA (when
onnxruntime has the CUDA execution provider), TensorRT fp16 / int8 (when tensorrt, CuPy and a GPU
are present; int8 also needs calibration data). Each runs the deploy head (network + argmax +
confidence) at batch 1 on a fixed normalised frame; weights are random (latency does not depend on
them). Timings: `warmup` untimed runs, then `iters` timed ones; median and p99 in ms, FPS =
1000 / median. Memory: CPU backends report the process's peak RSS growth over the value before the
backend was loaded (sampled every 5 ms; for PyTorch the weights were already loaded, so it is the
activations' share); PyTorch CUDA reports `torch.cuda.max_memory_allocated`;
ONNX Runtime CUDA and TensorRT report none (their allocators are not visible from here).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
import gc
import importlib.util
import json
import logging
from pathlib import Path
import tempfile
import threading
import time

import numpy as np
import psutil
import torch

LOG = logging.getLogger(__name__)
BACKENDS = ('torch', 'ort-cpu', 'ort-cuda', 'trt-fp16', 'trt-int8')
TEACHER = 'swiftnet_ss_convnext_l'


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


class PeakRss:
    """Samples this process's RSS in a thread; `peak_mib` is the growth over the start value."""

    def __init__(self, interval: float = 0.005):
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._base = self._peak = 0

    def __enter__(self) -> 'PeakRss':
        gc.collect()
        self._base = self._peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)

    @property
    def peak_mib(self) -> float:
        """Peak RSS growth in MiB."""
        return (self._peak - self._base) / (1 << 20)


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

    status = {'torch': '', 'ort-cpu': ''}
    cuda_ep = 'CUDAExecutionProvider' in ort.get_available_providers()
    status['ort-cuda'] = '' if cuda_ep else 'onnxruntime has no CUDAExecutionProvider'
    missing = [m for m in ('tensorrt', 'cupy') if importlib.util.find_spec(m) is None]
    if missing:
        trt_reason = f"not installed: {', '.join(missing)}"
    else:
        trt_reason = '' if torch.cuda.is_available() else 'no CUDA GPU'
    status['trt-fp16'] = status['trt-int8'] = trt_reason
    return status


def bench_torch(head, row: BenchRow, image: torch.Tensor, warmup: int, iters: int) -> BenchRow:
    """PyTorch eager, on CUDA when available."""
    if torch.cuda.is_available():
        row.device, row.mem_kind = 'cuda', 'torch.cuda.max_memory_allocated'
        head, image = head.cuda(), image.cuda()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            times = time_runs(lambda: head(image), warmup, iters, torch.cuda.synchronize)
        row.peak_mem_mib = torch.cuda.max_memory_allocated() / (1 << 20)
        head.cpu()
        return fill_timing(row, times)
    row.device, row.mem_kind = 'cpu', 'peak RSS growth'
    with PeakRss() as rss, torch.inference_mode():
        times = time_runs(lambda: head(image), warmup, iters)
    row.peak_mem_mib = rss.peak_mib
    return fill_timing(row, times)


def bench_ort(onnx_path: Path, row: BenchRow, image: np.ndarray, warmup: int, iters: int,
              cuda: bool) -> BenchRow:
    """ONNX Runtime on the CPU or CUDA execution provider (inputs and outputs on the host)."""
    import onnxruntime as ort

    providers = ['CUDAExecutionProvider', 'CPUExecutionProvider'] if cuda else [
        'CPUExecutionProvider']
    row.device = 'cuda' if cuda else 'cpu'
    with PeakRss() as rss:
        session = ort.InferenceSession(str(onnx_path), providers=providers)
        times = time_runs(lambda: session.run(None, {'image': image}), warmup, iters)
    if not cuda:
        row.peak_mem_mib, row.mem_kind = rss.peak_mib, 'peak RSS growth'
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


def run_bench(models: list[str], sizes: list[tuple[int, int]], backends: list[str],
              warmup: int = 3, iters: int = 20, engine_dir: Path | None = None,
              calib_data: Path | None = None,
              log: Callable[[str], None] = print) -> list[BenchRow]:
    """Measure every model x size x backend; unavailable backends give skipped rows."""
    from seg_kd_ros.preprocessing import normalise
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
    from seg_kd_train.export.deploy_head import DeployHead, build_metadata
    from seg_kd_train.export.onnx_export import export_onnx, export_program
    from seg_kd_train.models import build_model, count_parameters

    status = available_backends()
    rows = []
    with tempfile.TemporaryDirectory(prefix='seg_kd_bench_') as tmp:
        engine_dir = Path(engine_dir or tmp)
        for name in models:
            torch.manual_seed(0)
            model = build_model(name).eval()
            params_m = count_parameters(model) / 1e6
            head = DeployHead(model).eval()
            for height, width in sizes:
                rng = np.random.default_rng(0)
                frame = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
                image = normalise(frame, IMAGENET_MEAN, IMAGENET_STD)
                onnx_path = None
                for backend in backends:
                    row = BenchRow(name, backend, '', height, width, round(params_m, 2))
                    if status.get(backend):
                        row.skipped = status[backend]
                    elif backend == 'trt-int8' and calib_data is None:
                        row.skipped = 'no --calib-data for INT8 calibration'
                    else:
                        if backend != 'torch' and onnx_path is None:
                            onnx_path = Path(tmp) / f'{name}_{height}x{width}.onnx'
                            export_onnx(export_program(head, (height, width)), onnx_path,
                                        build_metadata(name, model.num_classes, (height, width)))
                        if backend == 'torch':
                            bench_torch(head, row, torch.from_numpy(image), warmup, iters)
                        elif backend.startswith('ort-'):
                            bench_ort(onnx_path, row, image, warmup, iters,
                                      cuda=backend == 'ort-cuda')
                        else:
                            bench_tensorrt(onnx_path, row, frame, warmup, iters,
                                           backend.split('-')[1], engine_dir, calib_data)
                    rows.append(row)
                    log(format_row(row))
    return rows


def format_row(row: BenchRow) -> str:
    """One Markdown table line."""
    def num(v, fmt):
        return format(v, fmt) if v is not None else '-'

    return (f'| {row.model} | {row.backend} | {row.device or "-"} | {row.width}x{row.height} | '
            f'{row.params_m:.2f} | {num(row.median_ms, ".1f")} | {num(row.p99_ms, ".1f")} | '
            f'{num(row.fps, ".1f")} | {num(row.peak_mem_mib, ".0f")} | '
            f'{row.skipped or row.mem_kind} |')


TABLE_HEADER = ('| model | backend | device | input (WxH) | params (M) | median (ms) | p99 (ms) | '
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
