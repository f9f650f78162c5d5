"""What every part of the GPU check shares: its record, its time guard, versions and timing.

A part runs in its own process (`python -m bench.gpu_check.part_<name> --plan P --out O`). It
records each step as it finishes and rewrites its JSON file after every step, so whatever it
measured survives a kill at its time limit. The first failing step stops the part: the step is
recorded with the reason and the part's status becomes `failed`. A step that cannot run on this
machine (no CUDA, no ROS) is recorded as `skipped` with the reason and the part goes on.
"""

import argparse
from collections.abc import Callable, Iterator
import contextlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
import platform
import sys
import time
import traceback

import numpy as np


class PartStoppedError(Exception):
    """Ends a part early (a failed step or a spent time budget); the record says why."""


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, what a person reads in the summary."""
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'.rstrip(': ')


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a kill mid-write leaves the previous file)."""
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class PartRecord:
    """The steps and rows of one part, saved after every step.

    Args:
        name: the part's name (`train`, `infer`, ...).
        path: the part's JSON file.
        budget_s: seconds the part may use; no new step starts after that.
    """

    def __init__(self, name: str, path: Path, budget_s: float) -> None:
        self.path = path
        self.started = time.monotonic()
        self.budget_s = float(budget_s)
        self.data: dict = {'part': name, 'status': 'running', 'reason': '', 'budget_s': budget_s,
                           'seconds': 0.0, 'steps': [], 'rows': [], 'notes': []}
        self.save()

    def elapsed(self) -> float:
        """Seconds since the part started."""
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - self.elapsed()

    def save(self) -> None:
        """Rewrite the part's JSON file."""
        self.data['seconds'] = round(self.elapsed(), 1)
        write_json(self.path, self.data)

    def note(self, text: str) -> None:
        """Add a sentence to the part's notes (what was chosen and why)."""
        self.data['notes'].append(text)
        self.save()

    def row(self, row: dict) -> None:
        """Add a measurement row."""
        self.data['rows'].append(row)
        self.save()

    def skip(self, name: str, reason: str) -> None:
        """Record a step that cannot run here, with the reason."""
        self.data['steps'].append({'step': name, 'status': 'skipped', 'reason': reason,
                                   'seconds': 0.0})
        self.save()

    def check_time(self, name: str, need_s: float = 0.0) -> None:
        """Stop the part before `name` if less than `need_s` seconds of the budget are left."""
        if self.left() < need_s or self.left() <= 0:
            self.data['status'] = 'stopped'
            self.data['reason'] = (f'time budget {self.budget_s:.0f} s spent before step '
                                   f'{name!r} ({self.elapsed():.0f} s used)')
            self.save()
            raise PartStoppedError(self.data['reason'])

    @contextlib.contextmanager
    def step(self, name: str, need_s: float = 0.0) -> Iterator[dict]:
        """Run one step: yields a dict for its results; a failure stops the part.

        Args:
            name: what the step does, e.g. `train teacher fp16`.
            need_s: do not start it with less than this many seconds of the budget left.
        """
        self.check_time(name, need_s)
        entry: dict = {'step': name, 'status': 'running', 'seconds': 0.0}
        self.data['steps'].append(entry)
        self.save()
        start = time.monotonic()
        try:
            yield entry
        except PartStoppedError:
            raise
        except BaseException as exc:  # KeyboardInterrupt / SystemExit from a CLI, too
            entry.update(status='failed', reason=one_line(exc),
                         seconds=round(time.monotonic() - start, 2))
            self.data['status'] = 'failed'
            self.data['reason'] = f'{name}: {one_line(exc)}'
            self.save()
            print(f'[{self.data["part"]}] step {name!r} failed:', file=sys.stderr)
            traceback.print_exc()
            raise PartStoppedError(self.data['reason']) from None
        if entry['status'] == 'running':
            entry['status'] = 'ok'
        entry['seconds'] = round(time.monotonic() - start, 2)
        self.save()

    def finish(self) -> None:
        """Mark the part done unless a step already failed or stopped it."""
        if self.data['status'] == 'running':
            self.data['status'] = 'ok'
        self.save()


def run_part(name: str, body: Callable[[dict, PartRecord], None]) -> int:
    """Entry point of a part process: `--plan FILE --out FILE`; always writes its record."""
    parser = argparse.ArgumentParser(prog=f'bench.gpu_check.part_{name}')
    parser.add_argument('--plan', type=Path, required=True)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--budget', type=float, help="seconds (default: the plan's)")
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text())
    record = PartRecord(name, args.out, args.budget or plan['budgets'][name])
    if plan.get('threads'):
        # on a shared CPU, threads spin-waiting for each other make small steps many times
        # slower; processes this part starts (the node, pytest) inherit the setting
        os.environ['OMP_NUM_THREADS'] = str(plan['threads'])
        import torch

        torch.set_num_threads(plan['threads'])
    try:
        record.data['environment'] = environment()
        body(plan, record)
    except PartStoppedError:
        pass
    except BaseException as exc:  # noqa: BLE001 - anything outside a step is a failure too
        record.data['status'] = 'failed'
        record.data['reason'] = one_line(exc)
        traceback.print_exc()
    record.finish()
    print(f'[{name}] {record.data["status"]} in {record.elapsed():.1f} s '
          f'{record.data["reason"]}', flush=True)
    return 0


def require(condition: bool, message: str) -> None:
    """Fail the current step with `message` unless `condition` holds."""
    if not condition:
        raise AssertionError(message)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Versions of Python, torch, CUDA, the GPU and the libraries the check uses."""
    import torch

    env = {'python': platform.python_version(), 'machine': platform.machine(),
           'cpu_count': os.cpu_count(), 'torch': torch.__version__,
           'torch_cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available(),
           'cudnn': torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                   compute_capability=f'{props.major}.{props.minor}',
                   multiprocessors=props.multi_processor_count)
    else:
        env['gpu'] = 'none'
    for dist in ('torchvision', 'timm', 'onnx', 'onnxruntime', 'onnxscript', 'numpy',
                 'opencv-python-headless', 'safetensors'):
        env[dist] = _version(dist)
    env['cuda_bindings'] = _version('cuda-bindings')  # the TensorRT backend's CUDA runtime
    env['tensorrt'] = _version('tensorrt') if importlib.util.find_spec('tensorrt') else None
    env['rclpy_importable'] = importlib.util.find_spec('rclpy') is not None
    return env


def time_ms(fn: Callable[[], object], warmup: int, iters: int, device: str) -> np.ndarray:
    """Per-call times in ms of `fn`: CUDA events on a GPU, `perf_counter` on the CPU."""
    if not device.startswith('cuda'):
        from seg_kd_train.export.bench import time_runs

        return time_runs(fn, warmup, iters)
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(iters)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return np.asarray([s.elapsed_time(e) for s, e in events])


def latency(times: np.ndarray) -> dict:
    """Median and p99 in ms and FPS (1000 / median) of per-call times."""
    median = float(np.median(times))
    return {'median_ms': round(median, 3), 'p99_ms': round(float(np.percentile(times, 99)), 3),
            'fps': round(1000.0 / median, 1) if median > 0 else None, 'iters': int(len(times))}


def agreement(labels: np.ndarray, reference: np.ndarray) -> float:
    """Percentage of pixels with the same label."""
    return round(100.0 * float(np.mean(np.asarray(labels) == np.asarray(reference))), 3)


def frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """`n` uint8 RGB frames of smooth colour regions with noise, like a street scene's blobs."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        coarse = rng.integers(0, 256, (max(height // 32, 2), max(width // 32, 2), 3),
                              dtype=np.uint8)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        noise = rng.integers(-12, 13, (height, width, 3))
        out[i] = np.clip(smooth.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return out
