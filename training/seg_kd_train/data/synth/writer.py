"""Write synthetic adverse-weather frames in the ACDC layout (so `AcdcDataset` reads them).

    <out>/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
    <out>/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png
                                            <name>_gt_labelIds.png
                                            <name>_gt_invIds.png
    <out>/synth_info.json   (the generator's parameters, one entry per run)

Frame i of (split, condition) is drawn from generators seeded by (seed, split, condition, i), so
the output does not depend on the order or on which other splits/conditions are generated.

Runs never mix: a (split, condition) already in the root is refused unless `overwrite`, which
replaces its folders whole (other splits and conditions stay). Frames are rendered into a hidden
temporary folder inside the root and moved into place at the end, so a failed or interrupted run
leaves the root as it was.
"""

from collections.abc import Sequence
import json
import os
from pathlib import Path
import shutil
import tempfile
import time

import cv2
import numpy as np

from seg_kd_ros.atomic_files import atomic_write
from seg_kd_train.data.cityscapes_labels import train_ids_to_label_ids
from seg_kd_train.data.synth.scene import render_scene
from seg_kd_train.data.synth.weather import CONDITIONS, render_condition
from seg_kd_train.errors import SegKdError

SPLIT_CODES = {'train': 0, 'val': 1, 'test': 2}
CONDITION_CODES = {c: i for i, c in enumerate(CONDITIONS)}
FORMAT_VERSION = 1


def frame_name(index: int, frames_per_sequence: int) -> tuple[str, str]:
    """(sequence, file stem) of frame `index`, in ACDC's style (`<seq>_frame_<nnnnnn>`)."""
    seq = f'SYN{index // frames_per_sequence:04d}'
    return seq, f'{seq}_frame_{index:06d}'


def render_frame(seed: int, split: str, condition: str, index: int, size: tuple[int, int]):
    """Render one frame: (uint8 RGB image, uint8 trainIds, uint8 invalid mask)."""
    key = [seed, SPLIT_CODES[split], CONDITION_CODES[condition], index]
    scene = render_scene(size, np.random.default_rng(key + [0]))
    image, invalid = render_condition(scene, condition, np.random.default_rng(key + [1]))
    return image, scene.label, invalid


def _write_png(path: Path, array) -> None:
    if not cv2.imwrite(str(path), array):
        raise OSError(f'could not write {path}')


def _check_options(splits: Sequence[str], conditions: Sequence[str], width: int, height: int,
                   num_per_condition: int) -> None:
    for s in splits:
        if s not in SPLIT_CODES:
            raise SegKdError(f'unknown split {s!r}; expected some of {list(SPLIT_CODES)}')
    for c in conditions:
        if c not in CONDITION_CODES:
            raise SegKdError(f'unknown condition {c!r}; expected some of '
                             f'{list(CONDITION_CODES)}')
    if width < 32 or height < 16:
        raise SegKdError(f'--size must be at least 16x32 (HxW), got {height}x{width}')
    if num_per_condition < 1:
        raise SegKdError(f'--num must be >= 1, got {num_per_condition}')


def _parts(root: Path, split: str, cond: str) -> list[Path]:
    """The folders one (split, condition) occupies in the root."""
    return [root / kind / cond / split for kind in ('rgb_anon', 'gt')]


def _existing(root: Path, splits: Sequence[str], conditions: Sequence[str]) -> list[str]:
    """'split/condition' of every pair that already has files in the root."""
    return [f'{s}/{c}' for s in splits for c in conditions
            if any(p.is_dir() and any(p.iterdir()) for p in _parts(root, s, c))]


def _record_run(root: Path, run: dict) -> None:
    """Append this run to `synth_info.json` (several runs may fill one root: train, then val)."""
    info_path = root / 'synth_info.json'
    runs = []
    if info_path.is_file():
        try:
            runs = json.loads(info_path.read_text()).get('runs', [])
        except (ValueError, AttributeError):
            runs = []
    info = {'format': FORMAT_VERSION, 'generator': 'seg_kd_train.data.synth',
            'runs': runs + [run]}
    atomic_write(info_path, (json.dumps(info, indent=2) + '\n').encode())


def generate_dataset(
    out_root: str | Path,
    num_per_condition: int,
    size: tuple[int, int] = (512, 256),
    seed: int = 0,
    splits: Sequence[str] = ('train', 'val'),
    conditions: Sequence[str] = ('fog', 'night', 'rain', 'snow'),
    frames_per_sequence: int = 10,
    progress: bool = False,
    overwrite: bool = False,
) -> dict:
    """Generate `num_per_condition` frames for every split and condition.

    Args:
        out_root: dataset root to write (created if needed).
        num_per_condition: frames per (split, condition).
        size: (width, height) in pixels.
        seed: base seed.
        splits: any of train, val, test.
        conditions: any of clear, fog, night, rain, snow.
        frames_per_sequence: frames grouped in one `<sequence>` folder.
        progress: show a tqdm progress bar.
        overwrite: replace the (split, condition) folders that exist already; without it they
            are an error (a second run would otherwise mix its frames with the first's).

    Returns:
        dict with `frames` (number written), `seconds` and `root`.

    Raises:
        SegKdError: an unknown split or condition, a size or count out of range, or frames of
            the same split and condition already in the root (without `overwrite`).
    """
    w, h = int(size[0]), int(size[1])
    _check_options(splits, conditions, w, h, num_per_condition)
    root = Path(out_root)
    taken = _existing(root, splits, conditions)
    if taken and not overwrite:
        raise SegKdError(f'{root} already holds frames for {", ".join(taken)}; a second run '
                         'would mix with them: pass --overwrite to replace them, or choose '
                         'another --out')
    created = [p for p in (root, *root.parents) if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.synth-tmp-', dir=root))
    try:
        jobs = [(s, c, i) for s in splits for c in conditions for i in range(num_per_condition)]
        if progress:
            from tqdm import tqdm

            jobs = tqdm(jobs, desc='synth', unit='frame', disable=None)  # off without a TTY
        start = time.perf_counter()
        for split, cond, i in jobs:
            image, label, invalid = render_frame(seed, split, cond, i, (w, h))
            seq, stem = frame_name(i, frames_per_sequence)
            img_dir = staging / 'rgb_anon' / cond / split / seq
            gt_dir = staging / 'gt' / cond / split / seq
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            _write_png(img_dir / f'{stem}_rgb_anon.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            _write_png(gt_dir / f'{stem}_gt_labelTrainIds.png', label)
            _write_png(gt_dir / f'{stem}_gt_labelIds.png', train_ids_to_label_ids(label))
            _write_png(gt_dir / f'{stem}_gt_invIds.png', invalid)
        seconds = time.perf_counter() - start
        for split in splits:
            for cond in conditions:
                for new, old in zip(_parts(staging, split, cond), _parts(root, split, cond),
                                    strict=True):
                    if old.exists():
                        shutil.rmtree(old)
                    old.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(new, old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # the folders this run created, innermost first, if left empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    _record_run(root, {'seed': seed, 'size': [w, h], 'num_per_condition': num_per_condition,
                       'splits': list(splits), 'conditions': list(conditions),
                       'frames_per_sequence': frames_per_sequence,
                       'replaced': list(taken)})
    return {'frames': len(splits) * len(conditions) * num_per_condition, 'seconds': seconds,
            'root': str(root)}
