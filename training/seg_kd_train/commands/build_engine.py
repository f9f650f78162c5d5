"""`seg-kd build-engine`: exported ONNX -> cached TensorRT engine (fp32, fp16 or int8).

The builder is the runtime's (`seg_kd_ros.backends.tensorrt_build`), the one the node uses; this
command adds INT8 calibration from a dataset split. A cached engine with the same key (ONNX sha256,
TensorRT version, GPU, precision, profile) is reused; a stale one is an error unless --rebuild.
"""

import argparse
import logging
from pathlib import Path

from seg_kd_train.commands.arguments import (
    DEVICE_HELP,
    device,
    existing_file,
    writable_output,
)
from seg_kd_train.errors import SegKdError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument('--onnx', required=True, type=Path, help='exported .onnx file')
    parser.add_argument('--precision', choices=('fp32', 'fp16', 'int8'), default='fp16',
                        help='engine precision (default fp16)')
    parser.add_argument('--engine', type=Path,
                        help='destination (default <onnx stem>.<precision>.engine beside it)')
    parser.add_argument('--calib-data', type=Path, metavar='DIR',
                        help='int8: dataset root (ACDC layout) to calibrate on')
    parser.add_argument('--calib-split', default='val', help='int8: split (default val)')
    parser.add_argument('--calib-images', type=int, default=500,
                        help='int8: at most this many images (default 500)')
    parser.add_argument('--calib-batch', type=int, default=8, help='int8: batch size (default 8)')
    parser.add_argument('--calib-cache', type=Path,
                        help='int8: calibration cache (default <onnx stem>.int8.calib)')
    parser.add_argument('--rebuild', action='store_true',
                        help='replace a cached engine whose key differs (never done silently)')
    parser.add_argument('--timing-cache', type=Path, help='timing cache file')
    parser.add_argument('--workspace-gib', type=float, default=4.0,
                        help='builder workspace limit (default 4 GiB)')
    parser.add_argument('--max-batch', type=int, default=1,
                        help='largest batch of the profile for a dynamic-batch ONNX (default 1)')
    parser.add_argument('--device', type=device, default='cuda',
                        help=f'{DEVICE_HELP}; engines are built on a GPU (default cuda)')


def run(args: argparse.Namespace) -> int:
    """Build or reuse the engine and say which."""
    from seg_kd_ros.backends import cuda_index

    if args.device == 'cpu':
        raise SegKdError('--device cpu: TensorRT engines are built on a GPU: --device cuda or '
                         'cuda:N')
    existing_file(args.onnx, '--onnx')
    for option in ('engine', 'calib_cache', 'timing_cache'):  # before the build, not after it
        if getattr(args, option) is not None:
            writable_output(getattr(args, option), '--' + option.replace('_', '-'))
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        from seg_kd_train.export.tensorrt_engine import build

        result = build(args.onnx, args.engine, args.precision, calib_data=args.calib_data,
                       calib_split=args.calib_split, calib_images=args.calib_images,
                       calib_batch=args.calib_batch, calib_cache=args.calib_cache,
                       rebuild=args.rebuild, timing_cache=args.timing_cache,
                       workspace_gib=args.workspace_gib, max_batch=args.max_batch,
                       device_index=cuda_index(args.device))
    except (ValueError, FileNotFoundError) as exc:  # the builder's checks of its inputs
        raise SegKdError(str(exc)) from None
    verb = 'built' if result.built else 'reused cached'
    print(f'{verb} {result.engine_path} ({result.key["precision"]}, TensorRT '
          f'{result.key["tensorrt_version"]}, {result.key["gpu_name"]} sm'
          f'{result.key["compute_capability"]}) in {result.seconds:.1f} s')
    return 0
