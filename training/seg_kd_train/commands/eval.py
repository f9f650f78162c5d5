"""`seg-kd eval`: mIoU per condition, per-class IoU, ECE and a Markdown report for a model."""

import argparse
from pathlib import Path

from seg_kd_train.commands.arguments import (
    DEVICE_HELP,
    SIZE_HELP,
    SIZE_METAVAR,
    check_torch_device,
    device,
    existing_file,
    image_size,
    positive_float,
    writable_output,
)
from seg_kd_train.data.factory import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd eval`."""
    parser.add_argument('--weights', type=Path, required=True,
                        help='model weights (.safetensors from training) or a model file '
                             '(.onnx, .pt2, .engine), run as the node runs it')
    parser.add_argument('--data', required=True, help='dataset root')
    parser.add_argument('--dataset', default='acdc', choices=DATASETS)
    parser.add_argument('--split', default='val')
    parser.add_argument('--conditions', nargs='+',
                        help='ACDC conditions to score (default: fog night rain snow)')
    parser.add_argument('--size', type=image_size, metavar=SIZE_METAVAR,
                        help=f'resize the frames to {SIZE_HELP} (default: native)')
    parser.add_argument('--max-images', type=int, default=0, help='score the first N (0: all)')
    parser.add_argument('--temperature', type=positive_float, default=1.0,
                        help='softmax temperature for the confidence (weights only)')
    parser.add_argument('--samples', type=int, default=2, help='overlays per condition')
    parser.add_argument('--out', type=Path, help='report directory (default: beside the weights)')
    parser.add_argument('--title', help='report title')
    parser.add_argument('--device', type=device, help=DEVICE_HELP)
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table and write the report."""
    from seg_kd_train.data import build_dataset
    from seg_kd_train.evaluation.evaluate import MODEL_FILE_TYPES, evaluate, open_for_evaluation
    from seg_kd_train.evaluation.report import write_report

    existing_file(args.weights, '--weights')
    out = args.out or args.weights.parent / f'eval_{args.weights.stem}'
    writable_output(out, '--out')  # before the evaluation, not after it
    if args.weights.suffix not in MODEL_FILE_TYPES:
        check_torch_device(args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = open_for_evaluation(args.weights, args.device, args.temperature, args.size)
    dataset = build_dataset(args.dataset, args.data, args.split, args.conditions,
                            model.transform)
    summary, samples = evaluate(model.predict, dataset, model.num_classes, model.names,
                                args.max_images, keep_samples=args.samples,
                                progress=not args.no_progress)
    notes = [f'Model: {model.description}.', '',
             f'Data: `{args.data}` ({args.dataset}, split {args.split}, '
             f'{min(len(dataset), args.max_images or len(dataset))} images'
             + (f', resized to {args.size[0]}x{args.size[1]} (HxW)' if args.size else '')
             + ').']
    report = write_report(summary, samples, out, args.title or f'Evaluation: {args.weights.name}',
                          model.palette, notes)
    print(f'{"condition":<10} {"mIoU %":>7} {"ECE":>6}')
    for name, block in summary.items():
        if not name.startswith('_'):
            print(f'{name:<10} {100 * block["miou"]:7.2f} {block["ece"]:6.3f}')
    print(f'report: {report}')
    return 0
