"""Part (a): a few AMP training steps of the teacher, PIDNet-S and every distillation mix.

For each recipe, two modes:
- `fp16`: the real `seg-kd train` / `seg-kd distill` commands (the Trainer's AMP is fp16 autocast
  with the GradScaler, on CUDA only; on a CPU they run fp32). Each is run to step N-1 with
  `--stop-after`, then `--resume`d to step N: the checkpoint is written, read back and continued.
- `bf16`: the same recipe (model, task, losses, data) stepped under bf16 autocast without a
  scaler (the Trainer has no bf16 setting), its training state saved, loaded into a fresh task
  (every tensor compared) and stepped once more.
Every logged loss must be finite.
"""

import contextlib
import csv
import json
import math
from pathlib import Path
import sys

from bench.gpu_check.common import PartRecord, require, run_part


def _cli(argv: list[str]) -> None:
    """Run one `seg-kd` command in this process; a non-zero exit is an error."""
    from seg_kd_train.cli import main

    print('seg-kd ' + ' '.join(argv), flush=True)
    code = main(argv)
    require(code == 0, f'seg-kd {argv[0]} exited with {code}')


def _sets(plan: dict, distill: bool) -> list[str]:
    """`--set` overrides that shrink a recipe to a few tiny steps on the synthetic data."""
    t = plan['train']
    values = {
        'data.crop_size': f"[{t['crop']}, {t['crop']}]",
        'data.batch_size': t['batch'],
        'data.num_workers': 0,
        'data.conditions': '[' + ', '.join(t['conditions']) + ']',
        'data.max_val_images': 2,
        'data.eval_size': 'null',
        'model.pretrained': 'none',  # nothing can be downloaded on the GPU machine
        'train.amp': 'true',
        'train.ckpt_every': 1,
        'train.eval_every': 1000,  # evaluation runs once, at the last step
        'train.log_every': 1,
        'train.progress': 'false',
        'train.deterministic': 'false',
    }
    if distill:  # the teacher in half precision, as on a GPU it should be (ignored on a CPU)
        values['teacher.half'] = 'true'
    out: list[str] = []
    for key, value in values.items():
        out += ['--set', f'{key}={value}']
    return out


def _csv(path: Path) -> list[dict]:
    with path.open(newline='') as f:
        return list(csv.DictReader(f))


def trainer_fp16(plan: dict, entry: dict, recipe: dict, data: Path, runs: Path,
                 teacher: Path | None) -> Path:
    """`seg-kd train|distill` to step N-1, then `--resume` to N; return the run directory."""
    steps, device = plan['train']['steps'], plan['device']
    name = f"{recipe['name']}_fp16"
    argv = [recipe['command'], recipe['recipe'], '--data', str(data), '--runs', str(runs),
            '--name', name, '--device', device, '--steps', str(steps), '--no-progress']
    argv += _sets(plan, teacher is not None) + (['--teacher', str(teacher)] if teacher else [])
    run_dir = runs / name
    _cli(argv + ['--stop-after', str(steps - 1)])
    first = json.loads((run_dir / 'last_state.json').read_text())
    require(first['step'] == steps - 1, f"checkpoint at step {first['step']}, not {steps - 1}")
    _cli(argv + ['--resume'])
    state = json.loads((run_dir / 'last_state.json').read_text())
    losses = [float(r['loss']) for r in _csv(run_dir / 'train_log.csv')]
    evaluation = _csv(run_dir / 'eval_log.csv')[-1]
    require(state['step'] == steps, f"resumed run ended at step {state['step']}, not {steps}")
    require(len(losses) == steps, f'{len(losses)} logged losses for {steps} steps')
    require(all(math.isfinite(v) for v in losses), f'non-finite loss: {losses}')
    require((run_dir / 'last.safetensors').is_file(), 'no last.safetensors written')
    amp = device.startswith('cuda')
    entry.update(mode='fp16 autocast + GradScaler' if amp else
                 'fp32 (the Trainer uses AMP on CUDA only)',
                 losses=[round(v, 4) for v in losses], resumed_from_step=first['step'],
                 final_step=state['step'], scaler=state.get('scaler') or None,
                 eval={k: float(evaluation[k]) for k in ('miou_full', 'ece_full')})
    if not all(math.isfinite(v) for v in entry['eval'].values()):
        # not a loss: recorded for a person to look at, not a failure of this check
        entry['warning'] = f"non-finite evaluation at the last step: {entry['eval']}"
    return run_dir


def _recipe_overrides(plan: dict, data: Path, teacher: Path | None) -> dict:
    import yaml

    sets = _sets(plan, teacher is not None)[1::2]
    overrides = {k: yaml.safe_load(v) for k, v in (s.split('=', 1) for s in sets)}
    overrides['data.root'] = str(data)
    if teacher:
        overrides['teacher.weights'] = str(teacher)
    return overrides


def bf16_steps(plan: dict, entry: dict, recipe_file: str, data: Path, teacher: Path | None,
               state_path: Path) -> None:
    """Step the recipe's task under bf16 autocast, save, reload into a fresh task, step again."""
    import torch

    from seg_kd_train.config import load_recipe
    from seg_kd_train.models import build_model
    from seg_kd_train.train.checkpoint import load_training_state, save_training_state
    from seg_kd_train.train.distiller import build_task
    from seg_kd_train.train.train_data import KeyedTrainDataset, collate, training_set

    recipe = load_recipe(recipe_file, _recipe_overrides(plan, data, teacher))
    device = torch.device(plan['device'])
    steps, batch = plan['train']['steps'], recipe.data.batch_size
    dataset = KeyedTrainDataset(training_set(recipe.data), recipe.data, recipe.seed)

    def make():
        torch.manual_seed(recipe.seed)
        m = recipe.model
        student = build_model(m.name, num_classes=m.num_classes, pretrained=False, **m.kwargs)
        task = build_task(recipe, student, device).to(device).train()
        params, t = [p for p in task.parameters() if p.requires_grad], recipe.train
        if t.optimizer == 'sgd':  # the recipe's optimiser (PIDNet's is SGD), one LR for all
            optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum)
        else:
            optimizer = torch.optim.Adam(params, lr=t.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        scaler = torch.amp.GradScaler('cuda', enabled=False)  # bf16 needs no loss scaling
        return task, optimizer, scheduler, scaler

    def step(task, optimizer, index: int) -> float:
        samples = [dataset[(0, (index * batch + i) % len(dataset))] for i in range(batch)]
        b = collate(samples)
        images, labels = b['image'].to(device), b['label'].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = task(images, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    task, optimizer, scheduler, scaler = make()
    losses = [step(task, optimizer, i) for i in range(steps - 1)]
    save_training_state(state_path, task, optimizer, scheduler, scaler, steps - 1, {})
    task2, optimizer2, scheduler2, scaler2 = make()
    resumed, _ = load_training_state(state_path, task2, optimizer2, scheduler2, scaler2)
    require(resumed == steps - 1, f'loaded step {resumed}, saved {steps - 1}')
    saved, loaded = task.state_dict(), task2.state_dict()
    differ = [k for k in saved if not torch.equal(saved[k].cpu(), loaded[k].cpu())]
    require(not differ, f'reloaded task differs in {differ[:3]}')
    losses.append(step(task2, optimizer2, resumed))
    require(all(math.isfinite(v) for v in losses), f'non-finite loss: {losses}')
    entry.update(mode=f'bf16 autocast ({device.type})', losses=[round(v, 4) for v in losses],
                 resumed_from_step=resumed, final_step=resumed + 1)


def body(plan: dict, record: PartRecord) -> None:
    """Synthetic data, then each recipe in each mode; teacher first (the mixes need it)."""
    work = Path(plan['work']) / 'train'
    data, runs = work / 'data', work / 'runs'
    t = plan['train']
    with record.step('synthetic data (seg-kd synth)') as entry:
        _cli(['synth', '--out', str(data), '--num', str(t['synth_num']), '--size', t['synth_size'],
              '--conditions', ','.join(t['conditions']), '--splits', 'train,val'])
        entry['size'], entry['frames_per_condition'] = t['synth_size'], t['synth_num']
    teacher = None
    for name, reason in t.get('skip_recipes', {}).items():
        record.skip(name, reason)
    for recipe in t['recipes']:
        if recipe['name'] in t.get('skip_recipes', {}):
            continue
        needs_teacher = recipe['command'] == 'distill'
        for mode in t['modes']:
            with record.step(f"{recipe['name']} {mode}", need_s=t['need_s']) as entry:
                entry.update(recipe=recipe['recipe'], kind=recipe['command'])
                if mode == 'fp16':
                    run_dir = trainer_fp16(plan, entry, recipe, data, runs,
                                           teacher if needs_teacher else None)
                    if recipe.get('is_teacher'):
                        teacher = run_dir / 'last.safetensors'
                else:
                    bf16_steps(plan, entry, recipe['recipe'], data,
                               teacher if needs_teacher else None,
                               work / f"{recipe['name']}_bf16_state.safetensors")
            record.row({'recipe': recipe['name'], 'mode': entry['mode'],
                        'losses': entry['losses'], 'resume': f"{entry['resumed_from_step']} -> "
                        f"{entry['final_step']}", 'seconds': entry['seconds'],
                        'eval': entry.get('eval'), 'warning': entry.get('warning', '')})


if __name__ == '__main__':
    with contextlib.suppress(BrokenPipeError):
        sys.exit(run_part('train', body))
