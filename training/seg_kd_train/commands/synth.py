"""`seg-kd synth`: write synthetic adverse-weather street scenes in the ACDC layout."""

import argparse
from pathlib import Path

from seg_kd_train.commands.arguments import (
    SIZE_HELP,
    SIZE_METAVAR,
    image_size,
    names,
    positive_int,
    writable_output,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd synth`."""
    parser.add_argument('--out', required=True, type=Path, help='dataset root to write')
    parser.add_argument('--num', type=positive_int, default=50,
                        help='frames per condition and split (default 50)')
    parser.add_argument('--size', type=image_size, default=(256, 512), metavar=SIZE_METAVAR,
                        help=f'frame size, {SIZE_HELP} (default 256x512)')
    parser.add_argument('--seed', type=int, default=0, help='base seed (default 0)')
    parser.add_argument('--splits', type=names, default=['train', 'val'],
                        help='comma-separated splits (default train,val)')
    parser.add_argument('--conditions', type=names, default=['fog', 'night', 'rain', 'snow'],
                        help='comma-separated conditions among clear,fog,night,rain,snow '
                             '(default fog,night,rain,snow)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the frames of these splits and conditions if OUT has them '
                             '(without it that is an error: runs never mix)')
    parser.add_argument('--preview', nargs='?', const='', default=None, metavar='PATH',
                        help='also write a contact sheet PNG (default PATH: OUT/preview.png)')


def run(args: argparse.Namespace) -> int:
    """Generate the dataset, print where and how fast, optionally write the contact sheet."""
    from seg_kd_train.data.synth import generate_dataset

    writable_output(args.out, '--out')
    preview = None
    if args.preview is not None:
        preview = Path(args.preview) if args.preview else args.out / 'preview.png'
        writable_output(preview, '--preview')
    height, width = args.size
    result = generate_dataset(args.out, args.num, (width, height), args.seed, args.splits,
                              args.conditions, progress=True, overwrite=args.overwrite)
    fps = result['frames'] / max(result['seconds'], 1e-9)
    print(f"wrote {result['frames']} frames ({height}x{width}) to {args.out} in "
          f"{result['seconds']:.1f} s ({fps:.1f} frames/s)")
    if preview is not None:
        from seg_kd_train.data.synth.preview import contact_sheet

        contact_sheet(args.out, preview, args.conditions, split=args.splits[0])
        print(f'contact sheet: {preview}')
    return 0
