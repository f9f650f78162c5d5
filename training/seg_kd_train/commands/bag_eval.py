"""`seg-kd bag-eval`: play a bag into a running segmenter_node and score its outputs."""

import argparse
from pathlib import Path


def _rate(text: str) -> float | None:
    if text == 'max':
        return None
    try:
        value = float(text)
    except ValueError:
        msg = f"--rate must be a number > 0 or 'max', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--rate must be > 0 or 'max', got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seg-kd bag-eval`."""
    parser.add_argument('--bag', required=True, type=Path, help='ros2 bag (directory or file)')
    parser.add_argument('--out', required=True, type=Path, help='report folder to write')
    parser.add_argument('--rate', type=_rate, default=1.0,
                        help="multiple of the recorded rate, or 'max': next frame as soon as the "
                             'node answered the previous one (default 1.0)')
    parser.add_argument('--image-topic', default=None,
                        help='camera topic in the bag (default: /camera/image_raw[/compressed] or '
                             'the only image topic); raw or compressed is read from its type')
    parser.add_argument('--input-topic', default=None,
                        help="the node's input topic (default /image, or /image/compressed)")
    parser.add_argument('--labels-topic', default='/segmenter/labels')
    parser.add_argument('--confidence-topic', default='/segmenter/confidence',
                        help="'' to ignore confidence (no ECE)")
    parser.add_argument('--class-names-topic', default='/segmenter/class_names')
    parser.add_argument('--output-qos', choices=('best_effort', 'reliable'),
                        default='reliable',
                        help='reliability of our output subscriptions (the node publishes '
                             'reliable; best_effort matches any publisher)')
    parser.add_argument('--timeout', type=float, default=5.0,
                        help='seconds after which an unanswered frame counts as dropped')
    parser.add_argument('--wait', type=float, default=30.0,
                        help='seconds to wait for the node to appear on the ROS graph')
    parser.add_argument('--warmup', type=int, default=1,
                        help='unscored warm-up sends of the first frame (default 1)')
    parser.add_argument('--limit', type=int, default=None, help='play at most this many frames')
    parser.add_argument('--grid', type=int, default=6, help='frames in the overlay grid')
    parser.add_argument('--mp4', action='store_true', help='also write overlays.mp4')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """Play the bag, write the report and print its summary."""
    from seg_kd_train.bags.bag_eval import EvalOptions, evaluate_bag
    from seg_kd_train.bags.player import PlayerError
    from seg_kd_train.bags.reader import BagError

    options = EvalOptions(
        rate=args.rate, image_topic=args.image_topic, input_topic=args.input_topic,
        labels_topic=args.labels_topic, confidence_topic=args.confidence_topic,
        class_names_topic=args.class_names_topic, output_reliability=args.output_qos,
        timeout_s=args.timeout, wait_s=args.wait, warmup=args.warmup, grid=args.grid,
        mp4=args.mp4, limit=args.limit, progress=not args.no_progress)
    try:
        evaluate_bag(args.bag, args.out, options)
    except (BagError, PlayerError) as err:
        print(f'seg-kd bag-eval: {err}')
        return 1
    print((args.out / 'summary.md').read_text())
    print(f'report: {args.out.resolve()}')
    return 0
