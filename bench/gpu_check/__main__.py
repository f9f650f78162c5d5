"""Run the GPU check: `python -m bench.gpu_check [--dry-run] OUT_DIR` (see bench/gpu_check.sh).

Each part runs in its own process with a time budget (no new step starts after it) and a hard
limit (budget + grace, then its process group is killed); whatever it recorded is kept. After each
part the JSON and Markdown are rewritten, so an outer timeout still leaves the earlier parts.
"""

import argparse
import datetime
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

from bench.gpu_check.report import summary, write_report

PARTS = ('train', 'infer', 'runtime', 'tensorrt')
GRACE_S = 15
MIXES = ('kl', 'l2', 'lad', 'cwd', 'l2_kl', 'cwd_kl')
RECIPES = [
    {'name': 'teacher', 'recipe': 'config/recipes/synth_teacher.yaml', 'command': 'train',
     'is_teacher': True},
    {'name': 'pidnet_s', 'recipe': 'config/recipes/acdc_pidnet_s.yaml', 'command': 'train'},
] + [{'name': f'student_{m}', 'recipe': f'config/recipes/synth_student_{m}_border.yaml',
      'command': 'distill'} for m in MIXES]
# REFERENCE.md section 3: PIDNet (Xu et al., CVPR 2023), 93.2 FPS at 2048x1024 on an RTX 3090
# without TensorRT.
PIDNET_REFERENCE = {'model': 'pidnet_s', 'size': [1024, 2048], 'published_fps': 93.2,
                    'published_on': 'RTX 3090, fp32, no TensorRT',
                    'source': 'PIDNet paper, Xu et al., CVPR 2023'}


def gpu_plan() -> dict:
    """The plan on the lent GPU: at most 8 minutes in all."""
    return {
        'dry_run': False, 'device': 'cuda', 'deadline_s': 470, 'ros_wheels': '.whl/ros',
        'budgets': {'train': 140, 'infer': 180, 'runtime': 90, 'tensorrt': 30},
        'train': {'synth_num': 4, 'synth_size': '128x256', 'conditions': ['fog', 'night'],
                  'crop': 128, 'batch': 4, 'steps': 3, 'modes': ['fp16', 'bf16'],
                  'need_s': 8, 'recipes': RECIPES},
        'infer': {'models': 'students', 'sizes': [[512, 1024], [1024, 2048]],
                  'teacher_sizes': [[1024, 2048]], 'fast_dtype': 'fp16', 'warmup': 10,
                  'iters': 50, 'skip': {}, 'compile_models': ['pidnet_s', 'swiftnet_pyr_mnv4'],
                  'compile_sizes': [[1024, 2048]], 'need_s': 6, 'compile_need_s': 45,
                  'reference': PIDNET_REFERENCE},
        'runtime': {'model': 'swiftnet_pyr_mnv4', 'input_size': [512, 1024],
                    'camera_size': [1080, 1920], 'frames': 6, 'warmup': 3, 'iters': 30,
                    'node_timeout_s': 60, 'node_need_s': 30},
        'tensorrt': {'test_file': 'training/tests/integration/test_tensorrt.py'},
    }


def dry_plan() -> dict:
    """The same plan on the CPU with tiny sizes and two steps (under 2 minutes)."""
    plan = gpu_plan()
    plan.update(dry_run=True, device='cpu', deadline_s=115, threads=1,
                budgets={'train': 30, 'infer': 25, 'runtime': 50, 'tensorrt': 12})
    # On a shared 2-core CPU every model costs seconds: a few stand for all (each named as
    # skipped, with the reason), so that the dry run stays under 2 minutes.
    stand_in = ('dry run: student_cwd_kl (a feature term through an adapter and a logit term) '
                'stands for the six mixes on the CPU; all six run on the GPU')
    skip = {f'student_{m}': stand_in for m in MIXES if m != 'cwd_kl'}
    skip['pidnet_s'] = "dry run: PIDNet's loss runs on the GPU (and in its unit tests)"
    plan['train'].update(synth_num=2, synth_size='64x128', crop=64, batch=2, steps=2, need_s=2,
                         skip_recipes=skip)
    plan['infer'].update(
        models=['pidnet_s', 'swiftnet_ss_mnv4'], sizes=[[32, 64], [64, 128]],
        teacher_sizes=[[32, 64]], fast_dtype='bf16', warmup=1, iters=2, need_s=1,
        reference=dict(PIDNET_REFERENCE, size=[64, 128]),
        skip={'fp16': 'fp16 autocast is measured on CUDA only (CPU fp16 kernels are slow or '
                      'missing); the CPU dry run uses bf16',
              'cuda_graph': 'CUDA graphs need CUDA',
              'compile': 'torch.compile on the CPU spends minutes building C++ kernels; it '
                         'runs on the GPU only'},
        note='dry run: pidnet_s and swiftnet_ss_mnv4 stand for the eight students on the CPU; '
             'all run on the GPU')
    plan['runtime'].update(model='pidnet_s', input_size=[64, 128], camera_size=[96, 192],
                           frames=2, warmup=1, iters=3, node_timeout_s=60, node_need_s=12)
    return plan


def run_one(name: str, plan_path: Path, work: Path, budget: float, hard: float,
            log) -> dict:
    """Run one part's process; return its record, completed with how it ended."""
    out = work / f'{name}.json'
    log.write(f'\n===== part {name}: budget {budget:.0f} s, hard limit {hard:.0f} s =====\n')
    log.flush()
    command = [sys.executable, '-m', f'bench.gpu_check.part_{name}', '--plan', str(plan_path),
               '--out', str(out), '--budget', str(budget)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    killed = False
    try:
        proc.wait(timeout=hard)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the part and what it started (node, pytest)
        proc.wait()
        killed = True
    record = json.loads(out.read_text()) if out.is_file() else {
        'part': name, 'status': 'failed', 'steps': [], 'rows': [], 'notes': []}
    running = next((s['step'] for s in record.get('steps', []) if s['status'] == 'running'), '')
    if killed:
        record['status'] = 'killed'
        record['reason'] = (f'killed at its hard limit of {hard:.0f} s'
                            + (f' during step {running!r}' if running else ''))
    elif record['status'] == 'running' or proc.returncode:
        record['status'] = 'failed'
        record['reason'] = (f'process died with exit code {proc.returncode}'
                            + (f' during step {running!r}' if running else ''))
    return record


def main() -> int:
    """Run the parts in order within the plan's deadline; write and print the results."""
    parser = argparse.ArgumentParser(prog='bench/gpu_check.sh', description=__doc__)
    parser.add_argument('out_dir', type=Path, help='where gpu_check.json, .md and .log go')
    parser.add_argument('--dry-run', action='store_true',
                        help='the same plan on the CPU with tiny sizes and two steps')
    parser.add_argument('--parts', default=','.join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument('--time-scale', type=float, default=1.0, metavar='F',
                        help='multiply every time budget and the overall limit by F (a test on a '
                             'loaded machine checks that the script works, not how fast)')
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(',') if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f'--parts: unknown {unknown}; known: {list(PARTS)}')
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            parser.error(f'torch {torch.__version__} sees no CUDA GPU here; on a CPU machine '
                         f'run the same plan with --dry-run')
    started = time.monotonic()
    plan = dry_plan() if args.dry_run else gpu_plan()
    plan['deadline_s'] *= args.time_scale
    plan['budgets'] = {k: v * args.time_scale for k, v in plan['budgets'].items()}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {'dry_run': args.dry_run, 'plan': plan, 'environment': {}, 'parts': {},
              'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
                  timespec='seconds'), 'seconds': 0.0}
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as tmp, \
            open(args.out_dir / 'gpu_check.log', 'w') as log:
        work = Path(tmp)
        plan['work'] = str(work)
        plan_path = work / 'plan.json'
        plan_path.write_text(json.dumps(plan, indent=1))
        for name in parts:
            left = plan['deadline_s'] - (time.monotonic() - started)
            if left < 10:
                result['parts'][name] = {'part': name, 'status': 'not run', 'rows': [],
                                         'steps': [], 'notes': [],
                                         'reason': f"overall limit of {plan['deadline_s']} s "
                                                   f'reached'}
            else:
                budget = min(plan['budgets'][name], left - GRACE_S)
                record = run_one(name, plan_path, work, budget,
                                 min(budget + GRACE_S, left), log)
                result['parts'][name] = record
                result['environment'] = result['environment'] or record.get('environment', {})
            result['seconds'] = round(time.monotonic() - started, 1)
            json_path, md_path = write_report(args.out_dir, result)
    print(summary(result, json_path, md_path))
    return 0


if __name__ == '__main__':
    sys.exit(main())
