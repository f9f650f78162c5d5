"""`seg-kd import-checkpoint`: the authors' PIDNet or SwiftNet checkpoint as a weights file."""

import argparse
from pathlib import Path

MODELS = ('pidnet_s', 'pidnet_m', 'pidnet_l', 'swiftnet_ss_rn18', 'swiftnet_pyr_rn18')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `seg-kd import-checkpoint`."""
    parser.add_argument('--in', dest='src', required=True, type=Path, metavar='FILE',
                        help="the authors' checkpoint: PIDNet_*_ImageNet.pth.tar, "
                             'PIDNet_*_Cityscapes_*.pt, or SwiftNet rn18_*/model_best.pt')
    parser.add_argument('--out', required=True, type=Path, metavar='FILE.safetensors',
                        help='weights file to write (for model.pretrained, eval and export)')
    parser.add_argument('--source', choices=('pidnet', 'swiftnet'),
                        help='whose checkpoint (default: recognised from its keys)')
    parser.add_argument('--model', choices=MODELS,
                        help='the model it must hold (default: recognised from keys and shapes)')
    parser.add_argument('--classes', default='cityscapes', metavar='cityscapes|FILE',
                        help='class names: cityscapes (default) or a classes YAML file like '
                             'config/cityscapes_classes.yaml')


def run(args: argparse.Namespace) -> int:
    """Convert, check every tensor lands on the model, write the weights file, summarise."""
    from seg_kd_train.models.checkpoint_import import import_checkpoint
    from seg_kd_train.models.weights import plural

    imported = import_checkpoint(args.src, args.out, args.source, args.model, args.classes)
    what = ('the whole model' if imported.contents == 'full'
            else 'backbone only: a start for training (model.pretrained), not for export')
    print(f'{args.out}: {imported.model_name}, {imported.num_classes} classes, '
          f'{len(imported.state)} tensors from {args.src.name} ({what})')
    if imported.left_out:
        print(f'  left out {plural(len(imported.left_out), "tensor")} of no part of the model '
              f'(training loss, ImageNet classifier): {", ".join(imported.left_out[:4])}'
              f'{" ..." if len(imported.left_out) > 4 else ""}')
    norm = imported.normalisation
    if 'authors_pixel_mean' in norm:
        print(f"  the authors' normalisation (pixel - {norm['authors_pixel_mean']}) / "
              f"{norm['authors_pixel_std']} runs inside the model; its input stays "
              'ImageNet-normalised')
    return 0
