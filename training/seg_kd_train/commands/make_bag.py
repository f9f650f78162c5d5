"""`seg-kd make-bag`: a dataset split -> a ros2 bag (camera frames, ground truth, condition)."""

import argparse
from pathlib import Path

from seg_kd_train.commands.arguments import names, positive_float, positive_int, writable_output
from seg_kd_train.data.factory import DATASETS
from seg_kd_train.errors import SegKdError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seg-kd make-bag`."""
    parser.add_argument('--data', required=True, type=Path,
                        help='dataset root (the synthetic data uses the ACDC layout)')
    parser.add_argument('--dataset', choices=DATASETS, default='acdc', help='dataset layout')
    parser.add_argument('--split', default='val', help='split to write (default: val)')
    parser.add_argument('--conditions', type=names, default=None,
                        help='ACDC only: comma-separated conditions (default: fog,night,rain,snow;'
                             ' the synthetic data may also have clear)')
    parser.add_argument('--label-kind', choices=('auto', 'trainids', 'labelids'), default='auto',
                        help='ground-truth files to read (ACDC, Cityscapes): trainids '
                             '(*_labelTrainIds.png), labelids (*_labelIds.png, mapped to '
                             "trainIds) or auto (default): the dataset's usual kind (ACDC "
                             'trainids, Cityscapes labelids), else the other if only it is there')
    parser.add_argument('--out', required=True, type=Path, help='bag directory to create')
    parser.add_argument('--format', choices=('mcap', 'sqlite3'), default='mcap',
                        help='storage plugin (default: mcap)')
    parser.add_argument('--compressed', nargs='?', const='jpeg', choices=('jpeg', 'png'),
                        default=None, help='CompressedImage frames on <topic>/compressed '
                                           '(jpeg unless png is given)')
    parser.add_argument('--rate', type=positive_float, default=10.0,
                        help='frames per second (default 10)')
    parser.add_argument('--limit', type=positive_int, default=None,
                        help='write at most this many frames')
    parser.add_argument('--distro', choices=('humble', 'jazzy', 'kilted'), default='kilted',
                        help='ROS 2 distro whose message definitions go into the bag')
    parser.add_argument('--image-topic', default='/camera/image_raw',
                        help='camera topic (default /camera/image_raw)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing bag (once the new one is complete)')


def run(args: argparse.Namespace) -> int:
    """Write the bag and print what it holds."""
    from seg_kd_train.bags.make_bag import open_split, samples_of, write_bag

    if args.conditions and args.dataset != 'acdc':
        raise SegKdError(f'--conditions applies to acdc only, not {args.dataset}')
    writable_output(args.out, '--out')
    if args.out.exists() and not args.overwrite:
        raise SegKdError(f'--out {args.out} exists; pass --overwrite to replace it')
    dataset, label_type = open_split(args.dataset, args.data, args.split, args.conditions,
                                     args.label_kind)
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    summary = write_bag(samples_of(dataset, args.limit), args.out, storage=args.format,
                        compressed=args.compressed, rate=args.rate, distro=args.distro,
                        image_topic=args.image_topic, total=count, overwrite=args.overwrite)
    topics = ', '.join(f'{t} ({n})' for t, n in summary.topics.items())
    print(f'wrote {summary.path}: {summary.frames} frames over {summary.duration_s:.1f} s '
          f'({args.format}; ground truth from the {label_type} files); topics: {topics}')
    return 0
