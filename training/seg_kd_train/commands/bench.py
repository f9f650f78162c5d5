"""`seg-kd bench`: latency, FPS and memory of the students on every available backend."""

import argparse
import os
from pathlib import Path
import platform

from seg_kd_train.commands.arguments import (
    SIZE_HELP,
    at_least,
    image_sizes,
    names,
    positive_int,
    writable_output,
)
from seg_kd_train.errors import SegKdError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument('--models', default='students',
                        help="comma-separated registry names, or 'students' (every model but "
                             'the teacher; default)')
    parser.add_argument('--sizes', type=image_sizes, default='512x1024,1024x2048',
                        help=f'comma-separated input sizes, each {SIZE_HELP} '
                             '(default 512x1024,1024x2048)')
    parser.add_argument('--backends', type=names,
                        default='torch,ort-cpu,ort-cuda,trt-fp16,trt-int8',
                        help='comma-separated subset of torch, ort-cpu, ort-cuda, trt-fp16, '
                             'trt-int8 (unavailable ones are listed as skipped)')
    parser.add_argument('--warmup', type=at_least(0), default=3, help='untimed runs (default 3)')
    parser.add_argument('--iters', type=positive_int, default=20, help='timed runs (default 20)')
    parser.add_argument('--threads', type=at_least(0), default=0,
                        help='CPU threads for PyTorch (0: its default; ONNX Runtime uses its own)')
    parser.add_argument('--calib-data', type=Path, metavar='DIR',
                        help='dataset root for the INT8 engines (ACDC layout)')
    parser.add_argument('--engine-dir', type=Path, help='keep the built engines here')
    parser.add_argument('--out-dir', type=Path, default=Path('reports/bench'),
                        help='where bench.json and bench.md go (default reports/bench)')


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the table and write JSON and Markdown."""
    from seg_kd_train.export.bench import BACKENDS, TABLE_HEADER, run_bench, write_results
    from seg_kd_train.models import TEACHER, list_models

    known = list_models()
    if args.models == 'students':
        models = [m for m in known if m != TEACHER]
    else:
        models = names(args.models)
        unknown = sorted(set(models) - set(known))
        if unknown:
            raise SegKdError(f'--models: unknown {", ".join(unknown)}; known: {", ".join(known)}')
    bad = sorted(set(args.backends) - set(BACKENDS))
    if bad:
        raise SegKdError(f'--backends: unknown {", ".join(bad)}; known: {", ".join(BACKENDS)}')
    if args.calib_data is not None and not args.calib_data.is_dir():
        raise SegKdError(f'--calib-data {args.calib_data}: no such folder')
    writable_output(args.out_dir, '--out-dir')  # before the benchmark, not after it
    if args.engine_dir is not None:
        writable_output(args.engine_dir, '--engine-dir')
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    environment = {'cpu': platform.processor() or platform.machine(),
                   'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
                   'torch': torch.__version__,
                   'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else 'none',
                   'warmup': args.warmup, 'iters': args.iters}
    print(TABLE_HEADER)
    rows = run_bench(models, args.sizes, args.backends, args.warmup, args.iters,
                     args.engine_dir, args.calib_data, args.threads)
    json_path, md_path = write_results(rows, args.out_dir, environment)
    print(f'wrote {json_path} and {md_path}')
    return 0
