"""Write synthetic adverse-weather frames in the ACDC layout (so `AcdcDataset` reads them).

    <out>/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
    <out>/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png
                                            <name>_gt_labelIds.png
                                            <name>_gt_invIds.png
    <out>/synth_info.json   (the generator's parameters, one entry per run)

Frame i of (split, condition) is drawn from generators seeded by (seed, split, condition, i), so
the output does not depend on the order or on which other splits/conditions are generated.
"""

from collections.abc import Sequence
import json
from pathlib import Path
import time

import cv2
import numpy as np

from seg_kd_train.data.cityscapes_labels import train_ids_to_label_ids
from seg_kd_train.data.synth.scene import render_scene
from seg_kd_train.data.synth.weather import CONDITIONS, render_condition

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


def generate_dataset(
    out_root: str | Path,
    num_per_condition: int,
    size: tuple[int, int] = (512, 256),
    seed: int = 0,
    splits: Sequence[str] = ('train', 'val'),
    conditions: Sequence[str] = ('fog', 'night', 'rain', 'snow'),
    frames_per_sequence: int = 10,
    progress: bool = False,
) -> dict:
    """Generate `num_per_condition` frames for every split and condition.

    Args:
        out_root: dataset root to write (created; existing files with the same names are
            overwritten).
        num_per_condition: frames per (split, condition).
        size: (width, height) in pixels.
        seed: base seed.
        splits: any of train, val, test.
        conditions: any of clear, fog, night, rain, snow.
        frames_per_sequence: frames grouped in one `<sequence>` folder.
        progress: show a tqdm progress bar.

    Returns:
        dict with `frames` (number written), `seconds` and `root`.
    """
    for s in splits:
        if s not in SPLIT_CODES:
            raise ValueError(f'unknown split {s!r}; expected some of {list(SPLIT_CODES)}')
    for c in conditions:
        if c not in CONDITION_CODES:
            raise ValueError(f'unknown condition {c!r}; expected some of {list(CONDITION_CODES)}')
    w, h = int(size[0]), int(size[1])
    if w < 32 or h < 16:
        raise ValueError(f'size must be at least 32x16, got {w}x{h}')
    if num_per_condition < 1:
        raise ValueError(f'num_per_condition must be >= 1, got {num_per_condition}')
    root = Path(out_root)
    jobs = [(s, c, i) for s in splits for c in conditions for i in range(num_per_condition)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc='synth', unit='frame', disable=None)  # off without a TTY
    start = time.perf_counter()
    for split, cond, i in jobs:
        image, label, invalid = render_frame(seed, split, cond, i, (w, h))
        seq, stem = frame_name(i, frames_per_sequence)
        img_dir = root / 'rgb_anon' / cond / split / seq
        gt_dir = root / 'gt' / cond / split / seq
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        _write_png(img_dir / f'{stem}_rgb_anon.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(gt_dir / f'{stem}_gt_labelTrainIds.png', label)
        _write_png(gt_dir / f'{stem}_gt_labelIds.png', train_ids_to_label_ids(label))
        _write_png(gt_dir / f'{stem}_gt_invIds.png', invalid)
    seconds = time.perf_counter() - start
    run = {'seed': seed, 'size': [w, h], 'num_per_condition': num_per_condition,
           'splits': list(splits), 'conditions': list(conditions),
           'frames_per_sequence': frames_per_sequence}
    info_path = root / 'synth_info.json'
    runs = []
    if info_path.is_file():  # several runs may fill one root (e.g. train, then val)
        try:
            runs = json.loads(info_path.read_text()).get('runs', [])
        except (ValueError, AttributeError):
            runs = []
    info = {'format': FORMAT_VERSION, 'generator': 'seg_kd_train.data.synth',
            'runs': runs + [run]}
    info_path.write_text(json.dumps(info, indent=2) + '\n')
    return {'frames': len(splits) * len(conditions) * num_per_condition, 'seconds': seconds,
            'root': str(root)}
