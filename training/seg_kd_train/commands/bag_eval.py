"""`seg-kd bag-eval`: play a bag into a running segmenter_node and score its outputs."""

import argparse
import math
from pathlib import Path

from seg_kd_train.commands.arguments import at_least, positive_float, writable_output


def _rate(text: str) -> float:
    if text == 'max':
        return math.inf
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a multiple of the recorded rate > 0, or 'max'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seg-kd bag-eval`."""
    parser.add_argument('--bag', required=True, type=Path, help='ros2 bag (directory or file)')
    parser.add_argument('--out', required=True, type=Path,
                        help='report folder to write (a previous report there is replaced)')
    parser.add_argument('--rate', type=_rate, default=None, metavar='X|max',
                        help='fixed-rate playback for latency runs: X times the recorded rate, '
                             "or 'max' (back to back). Default: the next frame as soon as the "
                             'node answered the previous one, so accuracy covers every frame')
    parser.add_argument('--image-topic', default=None,
                        help='camera topic in the bag (default: /camera/image_raw[/compressed] or '
                             'the only image topic); raw or compressed is read from its type')
    parser.add_argument('--input-topic', default=None,
                        help="the node's input topic (default /image, or /image/compressed)")
    parser.add_argument('--labels-topic', default='/segmenter/labels')
    parser.add_argument('--confidence-topic', default='/segmenter/confidence',
                        help="'' to ignore confidence (no ECE)")
    parser.add_argument('--class-names-topic', default='/segmenter/class_names',
                        help="the node's class map (vision_msgs/LabelInfo, or the String JSON of "
                             "older nodes); '' to use the Cityscapes classes")
    parser.add_argument('--output-qos', choices=('best_effort', 'reliable'),
                        default='reliable',
                        help='reliability of our output subscriptions (the node publishes '
                             'reliable; best_effort matches any publisher)')
    parser.add_argument('--timeout', type=positive_float, default=5.0,
                        help='seconds after which an unanswered frame counts as dropped')
    parser.add_argument('--wait', type=positive_float, default=30.0,
                        help='seconds to wait for the node to appear on the ROS graph')
    parser.add_argument('--warmup', type=at_least(0), default=1,
                        help='unscored warm-up sends of the first frame (default 1)')
    parser.add_argument('--limit', type=at_least(1), default=None,
                        help='play at most this many frames')
    parser.add_argument('--grid', type=at_least(0), default=6, help='frames in the overlay grid')
    parser.add_argument('--mp4', action='store_true', help='also write overlays.mp4')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """Play the bag, write the report and print its summary."""
    from seg_kd_train.bags.bag_eval import EvalOptions, evaluate_bag

    writable_output(args.out, '--out')
    options = EvalOptions(
        rate=args.rate, image_topic=args.image_topic, input_topic=args.input_topic,
        labels_topic=args.labels_topic, confidence_topic=args.confidence_topic,
        class_names_topic=args.class_names_topic, output_reliability=args.output_qos,
        timeout_s=args.timeout, wait_s=args.wait, warmup=args.warmup, grid=args.grid,
        mp4=args.mp4, limit=args.limit, progress=not args.no_progress)
    evaluate_bag(args.bag, args.out, options)
    print((args.out / 'summary.md').read_text())
    print(f'report: {args.out.resolve()}')
    return 0
