"""`seg-kd bench`: latency, FPS and memory of the students on every available backend."""

import argparse
import os
from pathlib import Path
import platform

from seg_kd_train.commands.export import parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument('--models', default='students',
                        help="comma-separated registry names, or 'students' (every model but "
                             'the teacher; default)')
    parser.add_argument('--sizes', default='512x1024,1024x2048',
                        help='comma-separated HxW input sizes (default 512x1024,1024x2048)')
    parser.add_argument('--backends', default='torch,ort-cpu,ort-cuda,trt-fp16,trt-int8',
                        help='comma-separated subset of torch, ort-cpu, ort-cuda, trt-fp16, '
                             'trt-int8 (unavailable ones are listed as skipped)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs (default 3)')
    parser.add_argument('--iters', type=int, default=20, help='timed runs (default 20)')
    parser.add_argument('--threads', type=int, default=0,
                        help='CPU threads for PyTorch (0: its default; ONNX Runtime uses its own)')
    parser.add_argument('--calib-data', type=Path, metavar='DIR',
                        help='dataset root for the INT8 engines (ACDC layout)')
    parser.add_argument('--engine-dir', type=Path, help='keep the built engines here')
    parser.add_argument('--out-dir', type=Path, default=Path('reports/bench'),
                        help='where bench.json and bench.md go (default reports/bench)')


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the table and write JSON and Markdown."""
    import torch

    from seg_kd_train.export.bench import BACKENDS, TABLE_HEADER, run_bench, write_results
    from seg_kd_train.models import TEACHER, list_models

    if args.models == 'students':
        models = [m for m in list_models() if m != TEACHER]
    else:
        models = [m.strip() for m in args.models.split(',') if m.strip()]
        unknown = sorted(set(models) - set(list_models()))
        if unknown:
            raise SystemExit(f'--models: unknown {unknown}; known: {list_models()}')
    backends = [b.strip() for b in args.backends.split(',') if b.strip()]
    bad = sorted(set(backends) - set(BACKENDS))
    if bad:
        raise SystemExit(f'--backends: unknown {bad}; known: {list(BACKENDS)}')
    try:
        sizes = [parse_size(s) for s in args.sizes.split(',') if s.strip()]
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(f'--sizes: {exc}') from None
    if args.threads:
        torch.set_num_threads(args.threads)
    environment = {'cpu': platform.processor() or platform.machine(),
                   'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
                   'torch': torch.__version__,
                   'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else 'none',
                   'warmup': args.warmup, 'iters': args.iters}
    print(TABLE_HEADER)
    rows = run_bench(models, sizes, backends, args.warmup, args.iters, args.engine_dir,
                     args.calib_data, args.threads)
    json_path, md_path = write_results(rows, args.out_dir, environment)
    print(f'wrote {json_path} and {md_path}')
    return 0
