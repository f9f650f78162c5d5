"""`seg-kd export`: weights file or foreign ONNX -> model file (ONNX with the deploy head).

From weights: optionally fits the calibration temperature on a validation split first (and prints
ECE before and after); always prints the PyTorch vs ONNX Runtime parity of the written file.
From a foreign ONNX (`--onnx`, no torch needed): the same deploy head and metadata by graph
surgery, checked against the original graph in ONNX Runtime.
"""

import argparse
import json
from pathlib import Path
import time

from seg_kd_train.commands.arguments import (
    SIZE_HELP,
    SIZE_METAVAR,
    at_least,
    existing_file,
    image_size,
    positive_float,
    positive_int,
    writable_output,
)

# Options of one source only: given with the other, they would be silently ignored.
ONLY_WITH = {'--onnx': ('logits_output', 'classes', 'mean', 'std', 'keep_channels', 'model_name'),
             '--weights': ('calib_data', 'calib_split', 'calib_images', 'dynamic', 'pt2',
                           'opset')}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--weights', type=Path,
                        help='model weights file (runs/<name>/best.safetensors)')
    source.add_argument('--onnx', type=Path,
                        help='a segmentation ONNX from elsewhere (one float [N, 3, H, W] RGB '
                             'input, a logits output) to wrap into a model file')
    parser.add_argument('--out', required=True, type=Path, help='destination .onnx file')
    parser.add_argument('--input-size', type=image_size, default=(512, 1024),
                        metavar=SIZE_METAVAR,
                        help=f'network input size, {SIZE_HELP} (default 512x1024)')
    parser.add_argument('--calib-data', type=Path, metavar='DIR',
                        help='dataset root (ACDC layout) to fit the confidence temperature on')
    parser.add_argument('--calib-split', default='val', help='split to fit on (default val)')
    parser.add_argument('--calib-images', type=positive_int, default=200,
                        help='at most this many images for the fit (default 200)')
    parser.add_argument('--temperature', type=positive_float,
                        help='use this temperature instead of fitting one')
    parser.add_argument('--dynamic', action='store_true',
                        help='symbolic batch, height and width (default: static shape)')
    parser.add_argument('--pt2', type=Path, help='also write a torch.export .pt2 program here')
    parser.add_argument('--opset', type=at_least(17), default=18,
                        help='ONNX opset (>= 17; default 18)')
    foreign = parser.add_argument_group('with --onnx')
    foreign.add_argument('--logits-output', default='logits', metavar='NAME',
                         help='name of the logits output [N, C, h, w] (default logits)')
    foreign.add_argument('--classes', default='cityscapes', metavar='FILE|cityscapes',
                         help='class names and colours: a classes file (as '
                              'config/cityscapes_classes.yaml) or cityscapes (default)')
    foreign.add_argument('--mean', type=float, nargs=3, metavar=('R', 'G', 'B'),
                         help='normalisation mean the model was trained with, [0, 1] units')
    foreign.add_argument('--std', type=float, nargs=3, metavar=('R', 'G', 'B'),
                         help='normalisation std the model was trained with, [0, 1] units')
    foreign.add_argument('--keep-channels', metavar='0-18|0,1,2',
                         help='logit channels to keep, in class order (default all), e.g. 0-18 '
                              'when the model has a 20th void class')
    foreign.add_argument('--model-name', help='name in the metadata (default the file stem)')


def run_foreign(args: argparse.Namespace) -> int:
    """`--onnx`: wrap a foreign logits ONNX into a model file (torch is never imported)."""
    from seg_kd_ros.backends import ModelLoadError
    from seg_kd_train.errors import SegKdError
    from seg_kd_train.export.foreign import wrap_foreign_onnx
    from seg_kd_train.export.onnx_head import parse_channels

    if args.mean is None or args.std is None:
        raise SegKdError('--onnx needs --mean R G B and --std R G B, the normalisation the '
                         'model was trained with ([0, 1] units; ImageNet: --mean 0.485 0.456 '
                         '0.406 --std 0.229 0.224 0.225)')
    started = time.monotonic()
    try:
        keep = None if args.keep_channels is None else parse_channels(args.keep_channels)
        metadata, parity = wrap_foreign_onnx(
            args.onnx, args.out, args.logits_output, args.classes, args.mean, args.std,
            args.input_size, keep, 1.0 if args.temperature is None else args.temperature,
            args.model_name)
    except (ValueError, ModelLoadError) as exc:
        raise SegKdError(str(exc)) from None
    print(f'wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {len(metadata["classes"])} '
          f'classes, input {args.input_size[0]}x{args.input_size[1]})')
    print(f'parity with {args.onnx.name} in ONNX Runtime: {parity}')
    print(json.dumps({'labels_equal': parity.labels_equal,
                      'seconds': round(time.monotonic() - started, 1)}))
    return 0


def refuse_other_source_options(args: argparse.Namespace) -> None:
    """Refuse options of the source not chosen (e.g. --classes with --weights), naming them."""
    from seg_kd_train.errors import SegKdError

    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    source, other = ('--onnx', '--weights') if args.onnx is not None else ('--weights', '--onnx')
    given = ['--' + dest.replace('_', '-') for dest in ONLY_WITH[other]
             if getattr(args, dest) != defaults.get_default(dest)]
    if given:
        raise SegKdError(f"{', '.join(given)}: only with {other}, not with {source}; leave "
                         f"{'it' if len(given) == 1 else 'them'} out")


def run(args: argparse.Namespace) -> int:
    """Export; return 0 on success."""
    refuse_other_source_options(args)
    writable_output(args.out, '--out')  # before the export, not after it
    if args.pt2 is not None:
        writable_output(args.pt2, '--pt2')
    if args.onnx is not None:
        return run_foreign(args)
    existing_file(args.weights, '--weights')
    from seg_kd_train.export.from_weights import export_weights

    summary = export_weights(args.weights, args.out, args.input_size,
                             temperature=args.temperature, calib_data=args.calib_data,
                             calib_split=args.calib_split, calib_images=args.calib_images,
                             dynamic=args.dynamic, opset=args.opset, pt2=args.pt2)
    print(json.dumps({k: summary[k] for k in ('parity', 'seconds')}))
    return 0
