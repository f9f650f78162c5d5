"""One training loop for teachers, plain students and distilled students.

- AMP (fp16 autocast + GradScaler) on CUDA when the recipe asks; fp32 on CPU.
- DDP when started by `torchrun` (WORLD_SIZE > 1): same code, one process per GPU (gloo on CPU).
- Gradient accumulation, poly / cosine / constant schedules with optional linear warm-up.
- Evaluation per condition every `eval_every` steps and at the end (rank 0), best and last
  checkpoints written atomically, exact resume from `last_state.safetensors`.
- tqdm progress, CSV logs and a PNG of the loss and mIoU curves in the run directory.
"""

from contextlib import nullcontext
import math
import os
from pathlib import Path
import random
import shutil

import numpy as np
from safetensors import SafetensorError
import torch
from torch import nn
from tqdm import tqdm

from seg_kd_train.config import Recipe, save_recipe
from seg_kd_train.errors import SegKdError
from seg_kd_train.evaluation.evaluate import evaluate, headline, torch_predictor
from seg_kd_train.train.checkpoint import load_training_state, save_training_state
from seg_kd_train.train.distiller import build_task
from seg_kd_train.train.run_log import CsvLog, plot_curves
from seg_kd_train.train.train_data import (
    KeyedTrainDataset,
    ResumableSampler,
    collate,
    training_set,
    validation_set,
)


def lr_factor(step: int, total: int, schedule: str, power: float = 0.9, min_ratio: float = 0.0,
              warmup: int = 0) -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == 'poly':
        return max(min_ratio, (1.0 - progress) ** power)
    if schedule == 'cosine':
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def check_readable(dataset, max_images: int, what: str) -> None:
    """Read the first `max_images` samples (0: all) of a split once, before training.

    A missing or corrupt file is then found at once, not at the first evaluation after all the
    steps (when the run would end with no checkpoint).
    """
    count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    if count == 0:
        raise SegKdError(f'the {what} split has no images')
    for index in range(count):
        try:
            dataset.load(index)
        except SegKdError as exc:
            raise SegKdError(f'{what} split, checked before training: {exc}') from None


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    return world, int(os.environ.get('RANK', '0')), int(os.environ.get('LOCAL_RANK', '0'))


class Trainer:
    """Train the model of a recipe (with distillation when it has `distill` terms).

    Args:
        recipe: the validated recipe.
        run_dir: output directory (`runs/<name>`).
        device: 'cpu', 'cuda', 'cuda:N' or None (CUDA if available); under DDP, cuda:LOCAL_RANK.
        resume: continue from `run_dir/last_state.safetensors` if it exists.
        stop_after: stop after this global step without writing anything more (simulates a kill).
        progress: show progress bars (default: the recipe's `train.progress`).
    """

    def __init__(self, recipe: Recipe, run_dir: str | Path, device: str | None = None,
                 resume: bool = False, stop_after: int | None = None,
                 progress: bool | None = None):
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.world, self.rank, local_rank = _dist_info()
        self.distributed = self.world > 1
        if self.distributed:
            use_cuda = torch.cuda.is_available() and device != 'cpu'
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group('nccl' if use_cuda else 'gloo')
            self.device = torch.device(f'cuda:{local_rank}' if use_cuda else 'cpu')
            if use_cuda:
                torch.cuda.set_device(self.device)
        else:
            self.device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        self.is_main = self.rank == 0
        self.resume = resume
        self.stop_after = stop_after
        self.progress = recipe.train.progress if progress is None else progress
        self.amp = recipe.train.amp and self.device.type == 'cuda'
        self.state_path = self.run_dir / 'last_state.safetensors'

    # -- building -----------------------------------------------------------------------------

    def _build(self) -> None:
        from seg_kd_train.models import build_model

        r = self.recipe
        seed_everything(r.seed)
        if r.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        m = r.model
        self.student = build_model(m.name, num_classes=m.num_classes, pretrained=m.pretrained,
                                   **m.kwargs)
        self.task = build_task(r, self.student, self.device).to(self.device)
        self.optimizer = self._optimizer()
        t = r.train
        min_ratio = t.min_lr / t.lr if t.lr > 0 else 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, t.steps, t.schedule, t.poly_power, min_ratio,
                                                t.warmup_steps))
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp)
        self.step = 0
        self.best = -1.0
        if self.resume and self.state_path.is_file():
            try:
                self.step, extra = load_training_state(self.state_path, self.task,
                                                       self.optimizer, self.scheduler,
                                                       self.scaler)
            except (SafetensorError, ValueError, OSError) as exc:
                raise SegKdError(f'--resume: cannot continue from {self.state_path} ({exc}); '
                                 'delete it to start the run over') from None
            self.best = float(extra.get('best', -1.0))
        self.model = self.task
        if self.distributed:
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.model = nn.parallel.DistributedDataParallel(self.task, device_ids=ids)

    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.recipe.train
        backbone = getattr(self.student, 'backbone', None)
        backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        params = [p for p in self.task.parameters() if p.requires_grad]
        groups = [{'params': [p for p in params if id(p) in backbone_ids],
                   'lr': t.lr * t.backbone_lr_mult},
                  {'params': [p for p in params if id(p) not in backbone_ids], 'lr': t.lr}]
        groups = [g for g in groups if g['params']]
        if t.optimizer == 'sgd':
            return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum,
                                   weight_decay=t.weight_decay)
        cls = torch.optim.AdamW if t.optimizer == 'adamw' else torch.optim.Adam
        return cls(groups, lr=t.lr, weight_decay=t.weight_decay)

    def _open_data(self) -> None:
        """Open the splits and read the validation samples once, before any model is built."""
        from seg_kd_train.data.transforms import EvalTransform

        r = self.recipe
        self.train_base = training_set(r.data)
        size = tuple(r.data.eval_size) if r.data.eval_size else None
        self.val_set = validation_set(r.data, EvalTransform(size))
        if self.is_main:
            check_readable(self.val_set, r.data.max_val_images, 'validation')

    def _loaders(self):
        r = self.recipe
        self.train_set = KeyedTrainDataset(self.train_base, r.data, r.seed)
        sampler = ResumableSampler(len(self.train_set), r.data.batch_size, r.seed,
                                   start_batch=self.step * r.train.grad_accum, rank=self.rank,
                                   world_size=self.world)
        loader = torch.utils.data.DataLoader(
            self.train_set, batch_size=r.data.batch_size, sampler=sampler, collate_fn=collate,
            num_workers=r.data.num_workers, pin_memory=self.device.type == 'cuda',
            persistent_workers=False,
            # its own generator: creating the iterator must not draw from the global RNG, whose
            # state is part of the checkpoint
            generator=torch.Generator().manual_seed(r.seed))
        return loader

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to `train.steps` (or `stop_after`); return the last evaluation's numbers."""
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            return self._run()
        finally:  # leave the process's global setting as it was
            torch.use_deterministic_algorithms(deterministic)

    def _run(self) -> dict:
        # data, model and teacher first: a mistake in any of them stops the run before the run
        # folder exists, and a run that fails before its first checkpoint leaves no folder
        from seg_kd_train.models import check_pretrained

        check_pretrained(self.recipe.model.name, self.recipe.model.pretrained)  # a file header
        self._open_data()
        self._build()
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._train()
        except BaseException:
            if created and self.is_main and not any(self.run_dir.glob('*.safetensors')):
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _train(self) -> dict:
        loader = self._loaders()
        r, t = self.recipe, self.recipe.train
        train_log = CsvLog(self.run_dir / 'train_log.csv')
        eval_log = CsvLog(self.run_dir / 'eval_log.csv')
        if self.is_main:
            save_recipe(r, self.run_dir / 'recipe.yaml')
            train_log.truncate_after(self.step)
            eval_log.truncate_after(self.step)
        last_metrics: dict = {}
        batches = iter(loader)
        bar = tqdm(total=t.steps, initial=self.step, desc=r.name,
                   disable=not (self.progress and self.is_main), dynamic_ncols=True)
        self.task.train()
        while self.step < t.steps:
            if self.stop_after is not None and self.step >= self.stop_after:
                break
            terms = self._train_step(batches)
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f'{terms["loss"]:.3f}')
            if self.is_main and (self.step % t.log_every == 0 or self.step == t.steps):
                train_log.append({'step': self.step, 'lr': self.scheduler.get_last_lr()[-1],
                                  **terms})
            if self.step % t.eval_every == 0 or self.step == t.steps:
                last_metrics = self._evaluate_and_save_best(eval_log)
            if self.step % t.ckpt_every == 0 or self.step == t.steps:
                self._save_last()
        bar.close()
        if self.is_main and self.step >= t.steps:
            plot_curves(train_log.path, eval_log.path, self.run_dir / 'curves.png', r.name)
        if self.distributed:
            torch.distributed.barrier()
        return last_metrics

    def _train_step(self, batches) -> dict[str, float]:
        t = self.recipe.train
        sums: dict[str, float] = {}
        for micro in range(t.grad_accum):
            batch = next(batches)
            images = batch['image'].to(self.device, non_blocking=True)
            labels = batch['label'].to(self.device, non_blocking=True)
            last = micro == t.grad_accum - 1
            sync = nullcontext() if (last or not self.distributed) else self.model.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    loss, terms = self.model(images, labels)
                self.scaler.scale(loss / t.grad_accum).backward()
            sums['loss'] = sums.get('loss', 0.0) + float(loss.detach()) / t.grad_accum
            for k, v in terms.items():
                sums[f'loss_{k}'] = sums.get(f'loss_{k}', 0.0) + float(v) / t.grad_accum
        if t.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.task.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return sums

    def _evaluate_and_save_best(self, eval_log: CsvLog) -> dict:
        metrics: dict = {}
        if self.is_main:
            from seg_kd_train.data import CITYSCAPES_CLASSES

            r = self.recipe
            names = (list(CITYSCAPES_CLASSES) if r.model.num_classes == len(CITYSCAPES_CLASSES)
                     else None)
            predict = torch_predictor(self.student, self.device, amp=self.amp)
            summary, _ = evaluate(predict, self.val_set, r.model.num_classes, names,
                                  max_images=r.data.max_val_images,
                                  ignore_index=r.loss.ignore_index)
            self.task.train()  # the student is part of the task
            metrics = headline(summary)
            eval_log.append({'step': self.step, **metrics})
            if metrics['miou_full'] > self.best:
                self.best = metrics['miou_full']
                self._save_weights(self.run_dir / 'best.safetensors',
                                   {'step': self.step, 'miou_full': self.best})
        if self.distributed:
            torch.distributed.barrier()
        return metrics

    def _save_weights(self, path: Path, extra: dict) -> None:
        from seg_kd_train.models.weights import save_model_weights

        m = self.recipe.model
        save_model_weights(path, self.student, m.name, m.num_classes, m.kwargs,
                           extra={'recipe': self.recipe.name, **extra})

    def _save_last(self) -> None:
        if not self.is_main:
            return
        save_training_state(self.state_path, self.task, self.optimizer, self.scheduler,
                            self.scaler, self.step, {'best': self.best})
        self._save_weights(self.run_dir / 'last.safetensors', {'step': self.step})
