"""Parameters and FLOPs of every registered model; CPU latency of the students, eager vs ORT.

Usage:
    python bench/models.py                       # both tables
    python bench/models.py --no-latency          # parameters and FLOPs only (seconds)
    python bench/models.py --models pidnet_s swiftnet_pyr_mnv4 --repeats 10
    python bench/models.py --json models.json    # also write the figures, per model

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on the meta device (no memory, no
compute) at 2048x1024, batch 1; torch counts a multiply-add as 2 FLOPs, so GMACs = GFLOPs / 2 (the
PIDNet paper's "GFLOPs" are multiply-adds). Latency: batch 1 at 1024x512 (W x H), eval mode, fp32,
median of `--repeats` runs after one warm-up, deploy head included (uint8 frame in, normalisation,
network, labels and confidence out): PyTorch eager (`DeployHead` under `torch.inference_mode`) and
the model file `seg-kd export` writes, run by the node's own ONNX Runtime backend
(`seg_kd_ros.backends`, CPU provider, static size), both with `--threads` threads, their runs
alternated (eager, ORT, eager, ...) so that a change in the load of a shared machine reaches both;
the agreement of the two label maps on the same frame is printed beside them. The goal for every
student is eager / ORT >= 1.3. `--json FILE` writes, per model: params (M), gflops (2048x1024),
eager_ms, ort_ms, speedup and agreement (students only for the last four), with the load average.
"""

import argparse
import json
import logging
import os
from pathlib import Path
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from seg_kd_train.models import TEACHER, build_model, count_parameters, list_models

# parameters (M) in the thesis and in the official implementations (docs/thesis.md)
THESIS_M = {'pidnet_s': 7.6, 'pidnet_m': 28.5, 'pidnet_l': 36.9, 'swiftnet_ss_rn18': 12.9,
            'swiftnet_ss_lite_rn18': 12.3, 'swiftnet_pyr_rn18': 16.7, 'swiftnet_pyr_mnv4': 13.2,
            TEACHER: 206.0}
OFFICIAL_M = {'pidnet_s': 7.63, 'pidnet_m': 28.54, 'pidnet_l': 36.94, 'swiftnet_ss_rn18': 11.80,
              'swiftnet_pyr_rn18': 12.06}


def _fmt(value: float | None, digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def size_figures(name: str) -> dict:
    """Parameters (M) and GFLOPs at 2048x1024 of a model, counted on the meta device."""
    with torch.device('meta'):
        model = build_model(name).eval()
        x = torch.empty(1, 3, 1024, 2048)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return {'params': round(count_parameters(model) / 1e6, 3),
            'gflops': round(counter.get_total_flops() / 1e9, 2)}


def size_row(name: str, figures: dict) -> str:
    """Markdown row: parameters (ours, official, thesis), GFLOPs and GMACs."""
    return (f"| {name} | {figures['params']:.2f} | {_fmt(OFFICIAL_M.get(name))} | "
            f"{_fmt(THESIS_M.get(name), 1)} | {figures['gflops']:.1f} | "
            f"{figures['gflops'] / 2:.1f} |")


def _alternated_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two functions, run alternately after one warm-up each."""
    first()
    second()
    times: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def latency_figures(name: str, repeats: int, threads: int, workdir: Path) -> dict:
    """Eager and ONNX Runtime latency at 1024x512 (ms), their ratio and label agreement."""
    from seg_kd_ros.backends import create_backend
    from seg_kd_train.export.deploy_head import DeployHead
    from seg_kd_train.export.metadata import build_metadata
    from seg_kd_train.export.onnx_export import export_onnx, random_frames

    torch.manual_seed(0)
    head = DeployHead(build_model(name)).eval()
    frame = random_frames((512, 1024))
    x = torch.from_numpy(frame)
    path = export_onnx(head, workdir / f'{name}.onnx', build_metadata(name, 19, (512, 1024)))
    backend = create_backend(path, 'onnxruntime', 'cpu', threads=threads)
    with torch.inference_mode():
        eager_s, ort_s = _alternated_medians(lambda: head(x), lambda: backend.infer(frame),
                                             repeats)
        want = head(x)[0].numpy()
    agree = float(np.mean(backend.infer(frame)[0] == want))
    backend.close()
    return {'eager_ms': round(eager_s * 1e3, 1), 'ort_ms': round(ort_s * 1e3, 1),
            'speedup': round(eager_s / ort_s, 3), 'agreement': agree}


def latency_row(name: str, figures: dict) -> str:
    """Markdown row: eager, ORT, their ratio and the label agreement."""
    return (f"| {name} | {figures['eager_ms']:.0f} | {figures['ort_ms']:.0f} | "
            f"{figures['speedup']:.2f} | {figures['agreement']:.4%} |")


def main() -> int:
    """Print the tables (and write the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list_models(), choices=list_models())
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-latency', action='store_true')
    parser.add_argument('--json', type=Path, help='write the figures per model here')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    figures = {name: size_figures(name) for name in args.models}

    print('Parameters (19 classes, inference mode) and FLOPs at 2048x1024, batch 1\n')
    print('| model | params (M) | official (M) | thesis (M) | GFLOPs 2048x1024 | GMACs |')
    print('|---|---|---|---|---|---|')
    print('\n'.join(size_row(name, figures[name]) for name in args.models), flush=True)
    if not args.no_latency:
        print(f'\nCPU latency at 1024x512, batch 1, fp32, {args.threads} threads, median of '
              f'{args.repeats} alternated runs\n')
        print('| model | PyTorch eager (ms) | ONNX Runtime (ms) | eager / ORT | '
              'argmax agreement |\n|---|---|---|---|---|', flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                if name != TEACHER:
                    figures[name].update(latency_figures(name, args.repeats, args.threads,
                                                         Path(tmp)))
                    print(latency_row(name, figures[name]), flush=True)
    load = os.getloadavg()
    print(f'\nload average (1 min): {load_before[0]:.1f} before, {load[0]:.1f} after')
    if args.json:
        args.json.write_text(json.dumps({
            'size': '1024x512', 'threads': args.threads, 'repeats': args.repeats,
            'load_before': load_before, 'load_after': load, 'models': figures}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
