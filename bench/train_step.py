"""Time per training step: the student alone vs. the student distilled from a frozen teacher.

Synthetic tensors (no data loading), the real models, losses, distiller and optimiser step.
Prints ms per step (median of the timed steps) and the ratio to the student alone.

    .venv/bin/python bench/train_step.py                    # CPU defaults (the synthetic recipes)
    .venv/bin/python bench/train_step.py --device cuda --size 768x768 --batch 8 --amp \\
        --teacher swiftnet_ss_convnext_l --teacher-kwargs '{}' --student swiftnet_pyr_mnv4 \\
        --student-kwargs '{}'
"""

import argparse
import json
import statistics
import time

import torch

from seg_kd_train.config import DistillTerm, LossConfig
from seg_kd_train.models import build_model, count_parameters
from seg_kd_train.train.distiller import Distiller, SegmentationTask, TorchTeacher

VARIANTS = {
    'border (student alone)': [],
    'KL + border': [{'type': 'kl', 'weight': 5.0}],
    'CWD + border': [{'type': 'cwd', 'student': 'features', 'teacher': 'features',
                      'weight': 35.0, 'temperature': 4.0, 'adapter': 'conv_bn'}],
    'CWD + KL + border': [{'type': 'cwd', 'student': 'features', 'teacher': 'features',
                           'weight': 35.0, 'temperature': 4.0, 'adapter': 'conv_bn'},
                          {'type': 'kl', 'weight': 5.0}],
    'L2 + border': [{'type': 'l2', 'student': 'features', 'teacher': 'features', 'weight': 5.0,
                     'adapter': 'conv_bn'}],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--student', default='swiftnet_ss_mnv4')
    p.add_argument('--student-kwargs', default='{"backbone": "mobilenetv4_conv_small", '
                                               '"num_features": 64}')
    p.add_argument('--teacher', default='swiftnet_ss_rn18')
    p.add_argument('--teacher-kwargs', default='{"backbone": "resnet18", "num_features": 128}')
    p.add_argument('--size', default='128x128', help='crop WIDTHxHEIGHT')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--steps', type=int, default=8, help='timed steps per variant')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true', help='fp16 autocast (CUDA)')
    p.add_argument('--half-teacher', action='store_true', help='fp16 teacher (CUDA)')
    p.add_argument('--threads', type=int, default=1, help='CPU threads (1: robust when shared)')
    return p.parse_args()


def time_variant(task, images, labels, args, device) -> float:
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=args.amp and device.type == 'cuda')
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16,
                            enabled=args.amp and device.type == 'cuda'):
            loss, _ = task(images, labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    w, h = (int(v) for v in args.size.split('x'))
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, h, w, device=device)
    labels = torch.randint(0, 19, (args.batch, h, w), device=device)
    teacher_model = build_model(args.teacher, **json.loads(args.teacher_kwargs))
    teacher = TorchTeacher(teacher_model, 19, device, half=args.half_teacher)
    print(f'device {device} ({torch.get_num_threads()} threads), batch {args.batch} x {w}x{h}, '
          f'amp {args.amp}; median of {args.steps} steps')
    print(f'teacher {args.teacher} {count_parameters(teacher_model) / 1e6:.2f} M params')
    results = {}
    for name, specs in VARIANTS.items():
        torch.manual_seed(0)
        student = build_model(args.student, **json.loads(args.student_kwargs))
        if not specs:
            task = SegmentationTask(student, LossConfig(name='border'))
            print(f'student {args.student} {count_parameters(student) / 1e6:.2f} M params')
        else:
            task = Distiller(student, teacher, LossConfig(name='border'),
                             [DistillTerm(**s) for s in specs], 19)
        task.to(device).train()
        results[name] = time_variant(task, images, labels, args, device)
    base = results['border (student alone)']
    print(f'{"variant":<24} {"ms/step":>9} {"ratio":>6}')
    for name, seconds in results.items():
        print(f'{name:<24} {1000 * seconds:9.1f} {seconds / base:6.2f}')


if __name__ == '__main__':
    main()
