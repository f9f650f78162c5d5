"""Time per training step: the student alone, the teacher's forward alone, and each distillation.

Synthetic tensors (no data loading), the real models, losses, distiller and optimiser step.
What distillation costs is `distill_step / (student_step + teacher_forward)`: 1.0 would mean the
KD terms and adapters are free and the teacher runs as fast inside the step as alone.

The student step, the teacher's forward (no graph, the distiller's own teacher call) and every
loss mix take turns in short blocks (`--block`, the first step of each untimed), so a change in
the load of a shared machine hits them all alike while each timed step follows one of its own;
each figure is the median of its timed steps. Both clocks are printed: wall, and this process's
CPU time (steadier when other jobs share the cores; on CUDA read the wall clock only), with the
page faults per step (fresh memory from the OS: glibc's malloc hands back and takes again the
pages of tensors of a few MB, and on CPU that costs as much as some loss terms).

    .venv/bin/python bench/train_step.py                    # CPU defaults (the synthetic recipes)
    .venv/bin/python bench/train_step.py --json train_step.json
    .venv/bin/python bench/train_step.py --device cuda --size 768x768 --batch 8 --amp \\
        --teacher swiftnet_ss_convnext_l --teacher-kwargs '{}' --student swiftnet_pyr_mnv4 \\
        --student-kwargs '{}'
"""

import argparse
from collections.abc import Callable
import json
import os
from pathlib import Path
import platform
import resource
import statistics
import time

from node_stages import parse_size
import torch

from seg_kd_train.config import DistillTerm, LossConfig
from seg_kd_train.models import build_model, count_parameters
from seg_kd_train.train.distiller import Distiller, SegmentationTask, TorchTeacher

STUDENT_ALONE = 'border (student alone)'
VARIANTS = {
    STUDENT_ALONE: [],
    'KL + border': [{'type': 'kl', 'weight': 5.0}],
    'CWD + border': [{'type': 'cwd', 'student': 'features', 'teacher': 'features',
                      'weight': 35.0, 'temperature': 4.0, 'adapter': 'conv_bn'}],
    'CWD + KL + border': [{'type': 'cwd', 'student': 'features', 'teacher': 'features',
                           'weight': 35.0, 'temperature': 4.0, 'adapter': 'conv_bn'},
                          {'type': 'kl', 'weight': 5.0}],
    'L2 + border': [{'type': 'l2', 'student': 'features', 'teacher': 'features', 'weight': 5.0,
                     'adapter': 'conv_bn'}],
}
TEACHER_FORWARD = 'teacher forward (no grad)'
GOAL = 1.1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--student', default='swiftnet_ss_mnv4')
    p.add_argument('--student-kwargs', default='{"backbone": "mobilenetv4_conv_small", '
                                               '"num_features": 64}')
    p.add_argument('--teacher', default='swiftnet_ss_rn18')
    p.add_argument('--teacher-kwargs', default='{"backbone": "resnet18", "num_features": 128}')
    p.add_argument('--size', default='128x128', help='crop WIDTHxHEIGHT')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--steps', type=int, default=10, help='timed steps per variant')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--block', type=int, default=3,
                   help='steps per turn, the first untimed (>= 2)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true', help='fp16 autocast (CUDA)')
    p.add_argument('--half-teacher', action='store_true', help='fp16 teacher (CUDA)')
    p.add_argument('--threads', type=int, default=1, help='CPU threads (1: robust when shared)')
    p.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    return p.parse_args()


def make_step(task: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """One optimiser step of `task` on the fixed batch, as the trainer does it."""
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-4)
    amp = args.amp and device.type == 'cuda'
    scaler = torch.amp.GradScaler('cuda', enabled=amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss, _ = task(images, labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step


def time_in_turns(steps: dict[str, Callable[[], None]], args: argparse.Namespace,
                  device: torch.device) -> dict[str, dict[str, float]]:
    """Per callable: median wall and CPU seconds, and page faults per step.

    The callables take turns in blocks of `args.block` steps, the first of each block untimed:
    a timed step follows a step of its own, as in a training loop (memory as it leaves it), and a
    change in the machine's load still hits every callable alike. The CPU time (this process's)
    leaves out the time other jobs held the cores: on a shared machine it is the steadier figure.
    """
    samples: dict[str, dict[str, list[float]]] = {
        name: {'wall': [], 'cpu': [], 'faults': []} for name in steps}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    while len(samples[next(iter(steps))]['wall']) < args.steps:
        for name, step in steps.items():
            step()  # untimed: the memory of the previous callable's step is replaced by its own
            for _ in range(args.block - 1):
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0, c0 = time.perf_counter(), time.process_time()
                step()
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                samples[name]['wall'].append(time.perf_counter() - t0)
                samples[name]['cpu'].append(time.process_time() - c0)
                samples[name]['faults'].append(
                    resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return {name: {'wall': statistics.median(s['wall'][:args.steps]),
                   'cpu': statistics.median(s['cpu'][:args.steps]),
                   'faults': statistics.mean(s['faults'][:args.steps])}
            for name, s in samples.items()}


def main() -> None:
    args = parse_args()
    if args.block < 2:
        raise SystemExit(f'--block {args.block}: give 2 or more (the first step is untimed)')
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    w, h = parse_size(args.size)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, h, w, device=device)
    labels = torch.randint(0, 19, (args.batch, h, w), device=device)
    teacher_model = build_model(args.teacher, **json.loads(args.teacher_kwargs))
    teacher = TorchTeacher(teacher_model, 19, device, half=args.half_teacher)
    load_before = os.getloadavg()
    print(f'device {device} ({torch.get_num_threads()} threads), batch {args.batch} x {w}x{h}, '
          f'amp {args.amp}; median of {args.steps} steps, in turns of {args.block}')
    print(f'teacher {args.teacher} {count_parameters(teacher_model) / 1e6:.2f} M params')
    steps: dict[str, Callable[[], None]] = {}
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
        steps[name] = make_step(task, images, labels, args, device)
    steps[TEACHER_FORWARD] = lambda: teacher(images)
    results = time_in_turns(steps, args, device)
    load_after = os.getloadavg()
    rows = {}
    for clock in ('wall', 'cpu'):
        base = results[STUDENT_ALONE][clock]
        floor = base + results[TEACHER_FORWARD][clock]
        for name, r in results.items():
            row = rows.setdefault(name, {'faults_per_step': round(r['faults'])})
            row[f'{clock}_ms'] = round(1000 * r[clock], 2)
            row[f'{clock}_ratio_to_student'] = round(r[clock] / base, 3)
            row[f'{clock}_ratio_to_floor'] = (round(r[clock] / floor, 3) if VARIANTS.get(name)
                                              else None)
    print(f'{"":<26} {"wall clock":^26}   {"CPU time (this process)":^26}')
    print(f'{"variant":<26} {"ms":>7} {"/stud.":>7} {"/floor":>7}    {"ms":>7} {"/stud.":>7} '
          f'{"/floor":>7}  {"faults/step":>11}')
    for name, row in rows.items():
        cells = []
        for clock in ('wall', 'cpu'):
            vs_floor = row[f'{clock}_ratio_to_floor']
            cells.append(f'{row[f"{clock}_ms"]:7.1f} {row[f"{clock}_ratio_to_student"]:7.2f} '
                         + (f'{vs_floor:7.3f}' if vs_floor is not None else f'{"":>7}'))
        print(f'{name:<26} {cells[0]}    {cells[1]}  {row["faults_per_step"]:11d}')
    worst = {clock: max(r[f'{clock}_ratio_to_floor'] for r in rows.values()
                        if r[f'{clock}_ratio_to_floor'] is not None) for clock in ('wall', 'cpu')}
    print(f'floor = student step + teacher forward; goal: distill step / floor <= {GOAL}; worst '
          f'{worst["wall"]:.3f} (wall), {worst["cpu"]:.3f} (CPU); load average '
          f'{load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} CPUs)')
    if args.json:
        report = {
            'device': str(device), 'threads': torch.get_num_threads(), 'batch': args.batch,
            'size': f'{w}x{h}', 'amp': args.amp, 'half_teacher': args.half_teacher,
            'steps': args.steps, 'warmup': args.warmup, 'block': args.block,
            'student': args.student, 'teacher': args.teacher, 'torch': torch.__version__,
            'machine': platform.node(),
            'cpus': os.cpu_count(), 'load_average_before': [round(v, 2) for v in load_before],
            'load_average_after': [round(v, 2) for v in load_after],
            'goal_ratio_to_floor': GOAL, 'variants': rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + '\n')
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
