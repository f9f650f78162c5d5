"""`seg-kd export`: weights file -> ONNX (and optionally `.pt2`) with the deploy head.

Optionally fits the calibration temperature on a validation split first (and prints ECE before and
after); always prints the PyTorch vs ONNX Runtime parity of the written file.
"""

import argparse
import json
from pathlib import Path
import time

import torch


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be HxW (e.g. 512x1024), got {text!r}'
                                         ) from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f'size must be positive, got {text!r}')
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument('--weights', required=True, type=Path,
                        help='model weights file (runs/<name>/best.safetensors)')
    parser.add_argument('--out', required=True, type=Path, help='destination .onnx file')
    parser.add_argument('--input-size', type=parse_size, default=(512, 1024), metavar='HxW',
                        help='network input height x width (default 512x1024)')
    parser.add_argument('--calib-data', type=Path, metavar='DIR',
                        help='dataset root (ACDC layout) to fit the confidence temperature on')
    parser.add_argument('--calib-split', default='val', help='split to fit on (default val)')
    parser.add_argument('--calib-images', type=int, default=200,
                        help='at most this many images for the fit (default 200)')
    parser.add_argument('--temperature', type=float,
                        help='use this temperature instead of fitting one')
    parser.add_argument('--dynamic', action='store_true',
                        help='symbolic batch, height and width (default: static shape)')
    parser.add_argument('--pt2', type=Path, help='also write a torch.export .pt2 program here')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (>= 17; default 18)')


def fit_temperature_on(model, num_classes: int, data: Path, split: str, input_size,
                       max_images: int):
    """Fit the temperature on a dataset split; return the `CalibrationResult`."""
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
    from seg_kd_train.export.calibration import calibrate, collect_logits
    from seg_kd_train.export.samples import network_batches, open_split

    dataset = open_split(data, split)
    if len(dataset) == 0:
        raise ValueError(f'{data}: split {split!r} has no images')
    batches = network_batches(dataset, input_size, IMAGENET_MEAN, IMAGENET_STD, batch_size=2,
                              max_images=max_images)
    logits, labels, images = collect_logits(model, batches, num_classes=num_classes)
    return calibrate(logits, labels, images)


def parity_images(args, input_size, batch: int) -> torch.Tensor:
    """Frames for the parity check: from the calibration split if given, else synthetic."""
    from seg_kd_train.export.onnx_export import random_images

    if args.calib_data is None:
        return random_images(input_size, batch)
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
    from seg_kd_train.export.samples import network_batches, open_split

    dataset = open_split(args.calib_data, args.calib_split)
    images, _ = next(network_batches(dataset, input_size, IMAGENET_MEAN, IMAGENET_STD,
                                     batch_size=batch, max_images=batch))
    if len(images) < batch:
        return random_images(input_size, batch)
    return torch.from_numpy(images)


def run(args: argparse.Namespace) -> int:
    """Export; return 0 on success."""
    from seg_kd_train.export.deploy_head import DeployHead, build_metadata
    from seg_kd_train.export.onnx_export import (
        export_onnx,
        export_program,
        export_pt2,
        parity_check,
    )
    from seg_kd_train.models.weights import load_model_weights, read_weights_metadata

    started = time.monotonic()
    info = read_weights_metadata(args.weights)
    model = load_model_weights(args.weights).eval()
    input_size = args.input_size
    calibration = None
    if args.temperature is not None:
        temperature = args.temperature
        print(f'temperature {temperature} (given)')
    elif args.calib_data is not None:
        calibration = fit_temperature_on(model, info['num_classes'], args.calib_data,
                                         args.calib_split, input_size, args.calib_images)
        temperature = calibration.temperature
        print(f'calibration: {calibration}')
    else:
        temperature = 1.0
        print('temperature 1.0 (no --calib-data: confidence is not calibrated)')
    extra = {'weights_file': args.weights.name, 'model_kwargs': info['model_kwargs'],
             'dynamic': bool(args.dynamic)}
    if calibration is not None:
        extra['calibration'] = {**calibration.as_dict(), 'split': args.calib_split}
    metadata = build_metadata(info['model_name'], info['num_classes'], input_size, temperature,
                              extra=extra)
    head = DeployHead(model, temperature).eval()
    program = export_program(head, input_size, dynamic=args.dynamic)
    export_onnx(program, args.out, metadata, opset=args.opset)
    print(f'wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, opset {args.opset}, '
          f"{'dynamic' if args.dynamic else 'static'} shape, input {input_size[0]}x"
          f'{input_size[1]})')
    report = parity_check(head, args.out, parity_images(args, input_size, 2 if args.dynamic
                                                        else 1))
    print(f'parity PyTorch vs ONNX Runtime: {report}')
    if args.pt2 is not None:
        export_pt2(program, args.pt2, metadata)
        print(f'wrote {args.pt2}')
    summary = {'onnx': str(args.out), 'metadata': metadata, 'parity': report.as_dict(),
               'seconds': round(time.monotonic() - started, 1)}
    print(json.dumps({k: summary[k] for k in ('parity', 'seconds')}))
    return 0
