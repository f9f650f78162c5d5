"""Synthetic adverse-weather scenes: determinism, valid exact labels, ACDC layout, CLI preview."""

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from seg_kd_train.cli import main as seg_kd
from seg_kd_train.data import CITYSCAPES_CLASSES, AcdcDataset
from seg_kd_train.data.cityscapes_labels import label_ids_to_train_ids
from seg_kd_train.data.synth import augment_weather, generate_dataset
from seg_kd_train.data.synth.canvas import SKY_DEPTH
from seg_kd_train.data.synth.scene import render_scene
from seg_kd_train.data.synth.weather import fog, render_condition

SIZE = (160, 80)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*.png'))}


def test_generation_is_deterministic_and_independent_of_other_jobs(tmp_path):
    generate_dataset(tmp_path / 'a', 2, SIZE, seed=5, splits=('train', 'val'),
                     conditions=('fog', 'snow'))
    generate_dataset(tmp_path / 'b', 2, SIZE, seed=5, splits=('val',), conditions=('snow',))
    generate_dataset(tmp_path / 'a', 1, SIZE, seed=5, splits=('test',), conditions=('fog',))
    runs = json.loads((tmp_path / 'a' / 'synth_info.json').read_text())['runs']
    assert [r['splits'] for r in runs] == [['train', 'val'], ['test']] and runs[0]['seed'] == 5
    a, b = _tree(tmp_path / 'a'), _tree(tmp_path / 'b')
    a = {k: v for k, v in a.items() if '/test/' not in k}
    assert len(a) == 2 * 2 * 2 * 4 and len(b) == 2 * 4
    for name, data in b.items():  # the same frame whatever else was generated
        assert a[name] == data
    generate_dataset(tmp_path / 'c', 1, SIZE, seed=6, splits=('val',), conditions=('snow',))
    name = 'rgb_anon/snow/val/SYN0000/SYN0000_frame_000000_rgb_anon.png'
    assert not filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'c' / name, shallow=False)


def test_labels_are_valid_train_ids_and_files_agree(tmp_path):
    generate_dataset(tmp_path, 3, SIZE, seed=1, splits=('train',),
                     conditions=('clear', 'fog', 'night', 'rain', 'snow'))
    seen = set()
    for path in sorted(tmp_path.glob('gt/*/train/*/*_gt_labelTrainIds.png')):
        train = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        ids = cv2.imread(str(path).replace('labelTrainIds', 'labelIds'), cv2.IMREAD_UNCHANGED)
        inv = cv2.imread(str(path).replace('labelTrainIds', 'invIds'), cv2.IMREAD_UNCHANGED)
        assert train.shape == ids.shape == inv.shape == (SIZE[1], SIZE[0])
        values = set(np.unique(train).tolist())
        assert values <= set(range(len(CITYSCAPES_CLASSES))) | {255}
        assert (label_ids_to_train_ids(ids) == train).all()
        assert set(np.unique(inv).tolist()) <= {0, 1}
        seen |= values
    # a street scene: road, sidewalk, building, pole, vegetation, sky, car at least
    assert {0, 1, 2, 5, 8, 10, 13} <= seen


def test_acdc_loader_reads_synth_output(tmp_path):
    generate_dataset(tmp_path, 2, SIZE, seed=0, splits=('train', 'val'),
                     conditions=('fog', 'night', 'rain', 'snow'))
    ds = AcdcDataset(tmp_path, 'val')
    assert len(ds) == 8
    assert ds.conditions == ['fog'] * 2 + ['night'] * 2 + ['rain'] * 2 + ['snow'] * 2
    s = ds[3]
    assert s['image'].shape == (SIZE[1], SIZE[0], 3) and s['condition'] == 'night'
    by_ids = AcdcDataset(tmp_path, 'val', label_type='labelIds')
    assert (by_ids[3]['label'] == s['label']).all()
    masked = AcdcDataset(tmp_path, 'val', ignore_invalid=True)
    assert len(masked) == 8 and masked[0]['label'].shape == s['label'].shape


def test_weather_changes_the_image_not_the_label():
    scene = render_scene(SIZE, np.random.default_rng(3))
    label = scene.label.copy()
    clear, _ = render_condition(scene, 'clear', np.random.default_rng(0))
    luma = {}
    for cond in ('fog', 'night', 'rain', 'snow'):
        img, invalid = render_condition(scene, cond, np.random.default_rng(0))
        assert img.shape == clear.shape and img.dtype == np.uint8
        assert np.abs(img.astype(int) - clear).mean() > 10, cond
        assert invalid.shape == label.shape
        luma[cond] = img.mean()
    assert (scene.label == label).all()
    assert luma['night'] < 0.6 * clear.mean()
    assert luma['snow'] > clear.mean()


def test_fog_follows_scattering_with_depth():
    scene = render_scene(SIZE, np.random.default_rng(0))
    out, t = fog(scene.image, scene.depth, np.random.default_rng(1))
    near, far = scene.depth < 10, (scene.depth > 60) & (scene.depth < SKY_DEPTH)
    assert t[near].mean() > t[far].mean()
    assert (t[scene.depth >= SKY_DEPTH] < 1e-6).all()  # sky is pure airlight
    assert 0 <= t.min() and t.max() <= 1


def test_augment_weather_on_a_real_image_is_deterministic():
    img = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    for cond in ('fog', 'night', 'rain', 'snow'):
        a = augment_weather(img, cond, np.random.default_rng(4))
        b = augment_weather(img, cond, np.random.default_rng(4))
        assert a.dtype == np.uint8 and a.shape == img.shape and (a == b).all()
        assert not (a == img).all()
    with pytest.raises(ValueError, match='unknown condition'):
        augment_weather(img, 'hail', np.random.default_rng(0))


def test_cli_writes_dataset_and_contact_sheet(tmp_path, capsys):
    out = tmp_path / 'synth'
    rc = seg_kd(['synth', '--out', str(out), '--num', '2', '--size', '128x64', '--seed', '0',
                 '--splits', 'train', '--conditions', 'fog,night', '--preview'])
    assert rc == 0
    assert 'wrote 4 frames' in capsys.readouterr().out
    sheet = cv2.imread(str(out / 'preview.png'))
    assert sheet is not None
    assert sheet.shape[0] >= 2 * 64  # one row per condition
    assert len(AcdcDataset(out, 'train', ('fog', 'night'))) == 4
    assert seg_kd(['synth', '--out', str(out), '--num', '1', '--conditions', 'hail']) == 2
