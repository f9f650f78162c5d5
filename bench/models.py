"""Parameters and FLOPs of every registered model; CPU latency of the students, eager vs ORT.

Usage:
    python bench/models.py                       # both tables
    python bench/models.py --no-latency          # parameters and FLOPs only (seconds)
    python bench/models.py --models pidnet_s swiftnet_pyr_mnv4 --repeats 10

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on the meta device (no memory, no
compute) at 2048x1024, batch 1; torch counts a multiply-add as 2 FLOPs, so GMACs = GFLOPs / 2 (the
PIDNet paper's "GFLOPs" are multiply-adds). Latency: batch 1 at 1024x512 (W x H), eval mode, fp32,
median of `--repeats` runs after one warm-up, deploy head included (uint8 frame in, normalisation,
network, labels and confidence out): PyTorch eager (`DeployHead` under `torch.inference_mode`) and
the model file `seg-kd export` writes, run by the node's own ONNX Runtime backend
(`seg_kd_ros.backends`, CPU provider, static size), both with `--threads` threads; the agreement of
the two label maps is printed beside them.
"""

import argparse
import logging
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


def size_table(names: list[str]) -> list[str]:
    """Markdown rows: parameters (ours, official, thesis) and GFLOPs at 2048x1024."""
    rows = ['| model | params (M) | official (M) | thesis (M) | GFLOPs 2048x1024 | GMACs |',
            '|---|---|---|---|---|---|']
    for name in names:
        with torch.device('meta'):
            model = build_model(name).eval()
            x = torch.empty(1, 3, 1024, 2048)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
        gflops = counter.get_total_flops() / 1e9
        rows.append(f'| {name} | {count_parameters(model) / 1e6:.2f} | '
                    f'{_fmt(OFFICIAL_M.get(name))} | {_fmt(THESIS_M.get(name), 1)} | '
                    f'{gflops:.1f} | {gflops / 2:.1f} |')
    return rows


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_row(name: str, repeats: int, threads: int, workdir: Path) -> str:
    """Markdown row: eager and ONNX Runtime latency at 1024x512 and their label agreement."""
    from seg_kd_ros.backends import create_backend
    from seg_kd_train.export.deploy_head import DeployHead
    from seg_kd_train.export.metadata import build_metadata
    from seg_kd_train.export.onnx_export import export_onnx, random_frames

    torch.manual_seed(0)
    head = DeployHead(build_model(name)).eval()
    frame = random_frames((512, 1024))
    x = torch.from_numpy(frame)
    with torch.inference_mode():
        eager_s = _median_seconds(lambda: head(x), repeats)
        want = head(x)[0].numpy()
    path = export_onnx(head, workdir / f'{name}.onnx', build_metadata(name, 19, (512, 1024)))
    backend = create_backend(path, 'onnxruntime', 'cpu', threads=threads)
    ort_s = _median_seconds(lambda: backend.infer(frame), repeats)
    agree = float(np.mean(backend.infer(frame)[0] == want))
    return (f'| {name} | {eager_s * 1e3:.0f} | {ort_s * 1e3:.0f} | {eager_s / ort_s:.2f} | '
            f'{agree:.4%} |')


def main() -> int:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list_models(), choices=list_models())
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-latency', action='store_true')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)

    print('Parameters (19 classes, inference mode) and FLOPs at 2048x1024, batch 1\n')
    print('\n'.join(size_table(args.models)), flush=True)
    if args.no_latency:
        return 0
    print(f'\nCPU latency at 1024x512, batch 1, fp32, {args.threads} threads, median of '
          f'{args.repeats}\n')
    print('| model | PyTorch eager (ms) | ONNX Runtime (ms) | eager / ORT | argmax agreement |')
    print('|---|---|---|---|---|', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if name != TEACHER:
                print(latency_row(name, args.repeats, args.threads, Path(tmp)), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
