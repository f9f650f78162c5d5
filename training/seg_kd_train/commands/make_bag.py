"""`seg-kd make-bag`: a dataset split -> a ros2 bag (camera frames, ground truth, condition)."""

import argparse
from pathlib import Path

from seg_kd_train.data.factory import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seg-kd make-bag`."""
    parser.add_argument('--data', required=True, type=Path,
                        help='dataset root (the synthetic data uses the ACDC layout)')
    parser.add_argument('--dataset', choices=DATASETS, default='acdc', help='dataset layout')
    parser.add_argument('--split', default='val', help='split to write (default: val)')
    parser.add_argument('--conditions', default=None,
                        help='ACDC only: comma-separated conditions (default: fog,night,rain,snow;'
                             ' the synthetic data may also have clear)')
    parser.add_argument('--out', required=True, type=Path, help='bag directory to create')
    parser.add_argument('--format', choices=('mcap', 'sqlite3'), default='mcap',
                        help='storage plugin (default: mcap)')
    parser.add_argument('--compressed', nargs='?', const='jpeg', choices=('jpeg', 'png'),
                        default=None, help='CompressedImage frames on <topic>/compressed '
                                           '(jpeg unless png is given)')
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second (default 10)')
    parser.add_argument('--limit', type=int, default=None, help='write at most this many frames')
    parser.add_argument('--distro', choices=('humble', 'jazzy', 'kilted'), default='kilted',
                        help='ROS 2 distro whose message definitions go into the bag')
    parser.add_argument('--image-topic', default='/camera/image_raw',
                        help='camera topic (default /camera/image_raw)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')


def _dataset(args: argparse.Namespace):
    from seg_kd_train.data import build_dataset

    if args.conditions and args.dataset != 'acdc':
        raise SystemExit(f'seg-kd make-bag: --conditions applies to acdc only, not {args.dataset}')
    conditions = None
    if args.conditions:
        conditions = [c.strip() for c in args.conditions.split(',') if c.strip()]
    return build_dataset(args.dataset, args.data, args.split, conditions)


def run(args: argparse.Namespace) -> int:
    """Write the bag and print what it holds."""
    import shutil

    from seg_kd_train.bags.make_bag import MakeBagError, write_bag

    dataset = _dataset(args)
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))

    def samples():
        for i in range(count):
            sample = dataset.load(i)
            if dataset.records[i].label is None:  # e.g. a test split: no ground truth
                sample = {**sample, 'label': None}
            yield sample

    if args.out.exists():
        if not args.overwrite:
            print(f'seg-kd make-bag: {args.out} exists; pass --overwrite to replace it')
            return 1
        shutil.rmtree(args.out)
    try:
        summary = write_bag(samples(), args.out, storage=args.format, compressed=args.compressed,
                            rate=args.rate, distro=args.distro, image_topic=args.image_topic,
                            total=count)
    except MakeBagError as err:
        print(f'seg-kd make-bag: {err}')
        return 1
    topics = ', '.join(f'{t} ({n})' for t, n in summary.topics.items())
    print(f'wrote {summary.path}: {summary.frames} frames over {summary.duration_s:.1f} s '
          f'({args.format}); topics: {topics}')
    return 0
