"""`seg-kd synth`: write synthetic adverse-weather street scenes in the ACDC layout."""

import argparse
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, got {text!r}') from None
    return w, h


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(',') if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd synth`."""
    parser.add_argument('--out', required=True, type=Path, help='dataset root to write')
    parser.add_argument('--num', type=int, default=50,
                        help='frames per condition and split (default 50)')
    parser.add_argument('--size', type=_size, default=(512, 256),
                        help='WIDTHxHEIGHT (default 512x256)')
    parser.add_argument('--seed', type=int, default=0, help='base seed (default 0)')
    parser.add_argument('--splits', type=_names, default=['train', 'val'],
                        help='comma-separated splits (default train,val)')
    parser.add_argument('--conditions', type=_names, default=['fog', 'night', 'rain', 'snow'],
                        help='comma-separated conditions among clear,fog,night,rain,snow '
                             '(default fog,night,rain,snow)')
    parser.add_argument('--preview', nargs='?', const='', default=None, metavar='PATH',
                        help='also write a contact sheet PNG (default PATH: OUT/preview.png)')


def run(args: argparse.Namespace) -> int:
    """Generate the dataset, print where and how fast, optionally write the contact sheet."""
    from seg_kd_train.data.synth import generate_dataset

    try:
        result = generate_dataset(args.out, args.num, args.size, args.seed, args.splits,
                                  args.conditions, progress=True)
    except ValueError as exc:
        print(f'seg-kd synth: {exc}')
        return 2
    fps = result['frames'] / max(result['seconds'], 1e-9)
    print(f"wrote {result['frames']} frames ({args.size[0]}x{args.size[1]}) to {args.out} in "
          f"{result['seconds']:.1f} s ({fps:.1f} frames/s)")
    if args.preview is not None:
        from seg_kd_train.data.synth.preview import contact_sheet

        path = Path(args.preview) if args.preview else args.out / 'preview.png'
        contact_sheet(args.out, path, args.conditions, split=args.splits[0])
        print(f'contact sheet: {path}')
    return 0
