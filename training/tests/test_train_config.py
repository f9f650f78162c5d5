"""Recipes: typed loading, errors that name the key, every shipped recipe valid."""

from pathlib import Path

import pytest

from seg_kd_train.config import RecipeError, load_recipe, recipe_from_dict, save_recipe
from seg_kd_train.models import list_models
from seg_kd_train.train.trainer import lr_factor

RECIPES = sorted((Path(__file__).resolve().parents[2] / 'config' / 'recipes').glob(
    '*.yaml'))
BASE = {'name': 'x', 'model': {'name': 'swiftnet_ss_rn18'}}


def test_shipped_recipes_load_and_name_registered_models():
    assert len(RECIPES) >= 20
    names = set()
    for path in RECIPES:
        r = load_recipe(path)
        assert r.name == path.stem, path
        assert r.model.name in list_models(), path
        names.add(r.name)
        for term in r.distill:
            assert term.student in ('logits', 'features', 'context'), path
    rows = ['border', 'l2_border', 'l2_kl_border', 'lad_border', 'cwd_border', 'cwd_kl_border']
    for student in ('rn18', 'mnv4'):
        assert {f'acdc_{student}_{row}' for row in rows} <= names
    assert {'acdc_teacher_convnext_l', 'acdc_pidnet_s', 'acdc_pidnet_m', 'acdc_pidnet_l',
            'synth_teacher', 'synth_student_border', 'synth_student_cwd_kl_border'} <= names


@pytest.mark.parametrize('data, message', [
    ({**BASE, 'trian': {}}, r'unknown key `trian` \(did you mean `train`\?\)'),
    ({**BASE, 'train': {'lrr': 0.1}}, r'unknown key `train.lrr` \(did you mean `lr`\?\)'),
    ({**BASE, 'train': {'steps': 'ten'}}, r'`train.steps` must be int'),
    ({**BASE, 'train': {'amp': 1}}, r'`train.amp` must be bool'),
    ({**BASE, 'train': {'steps': 0}}, r'`train.steps` must be >= 1'),
    ({**BASE, 'loss': {'name': 'dice'}}, r'`loss.name` is \'dice\''),
    ({**BASE, 'distill': [{'type': 'kl', 'wieght': 2}]}, r'unknown key `distill\[0\].wieght`'),
    ({**BASE, 'distill': [{'type': 'kl'}]}, r'`distill` terms need `teacher.weights`'),
    ({**BASE, 'data': {'crop_size': [1, 2, 3]}}, r'`data.crop_size`'),
    ({**BASE, 'data': {'scale_range': [2.0, 1.0]}}, r'`data.scale_range` 0 < low <= high'),
    ({**BASE, 'data': {'hflip_prob': 1.5}}, r'`data.hflip_prob` is a probability'),
    ({**BASE, 'data': {'weather_prob': -0.1}}, r'`data.weather_prob` is a probability'),
    ({**BASE, 'data': {'jitter': [0.3, 0.3, 0.3]}}, r'`data.jitter` needs 4 amplitudes'),
    ({**BASE, 'data': {'jitter': [0.3, 0.3, 0.3, 0.9]}}, r'`data.jitter` needs 4 amplitudes'),
    ({**BASE, 'data': {'weather_conditions': ['hail']}}, r'`data.weather_conditions` must name'),
    ({**BASE, 'data': {'dataset': 'cityscapes', 'conditions': ['fog']}},
     r'`data.conditions` applies to acdc only; cityscapes has none'),
    ({**BASE, 'data': {'extra_train': [{'dataset': 'kitti', 'root': '/k'}]}},
     r"`data.extra_train\[0\].dataset` is 'kitti'; choose one of acdc, cityscapes, bdd100k"),
    ({**BASE, 'data': {'extra_train': [{'dataset': 'bdd100k'}]}},
     r'missing required key `data.extra_train\[0\].root`'),
    ({**BASE, 'data': {'extra_train': [{'dataset': 'bdd100k', 'root': '/b',
                                        'conditions': ['rain']}]}},
     r'`data.extra_train\[0\].conditions` applies to acdc only'),
    ({'name': 'x'}, r'missing required key `model`'),
])
def test_errors_name_the_key(data, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_dict(data, 'my.yaml')


def test_overrides_and_round_trip(tmp_path):
    r = load_recipe(RECIPES[0], {'data.root': '/somewhere', 'train.lr': '1e-3'})
    assert r.data.root == '/somewhere' and r.train.lr == pytest.approx(1e-3)
    save_recipe(r, tmp_path / 'recipe.yaml')
    assert load_recipe(tmp_path / 'recipe.yaml') == r


def test_schedules():
    assert lr_factor(0, 100, 'poly', 0.9) == 1.0
    assert lr_factor(50, 100, 'poly', 0.9) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(50, 100, 'cosine') == pytest.approx(0.5)
    assert lr_factor(100, 100, 'cosine', min_ratio=0.01) == pytest.approx(0.01)
    assert lr_factor(4, 100, 'cosine', warmup=10) == pytest.approx(0.5)
    assert lr_factor(7, 100, 'constant') == 1.0


def test_augmentation_and_extra_training_data_from_a_recipe():
    r = recipe_from_dict({**BASE, 'data': {
        'hflip_prob': 0.0, 'jitter': [0.1, 0.1, 0.1, 0], 'jitter_prob': 1, 'weather_prob': 0.3,
        'weather_conditions': ['fog', 'night'],
        'extra_train': [{'dataset': 'cityscapes', 'root': '/cs'},
                        {'dataset': 'acdc', 'root': '/acdc2', 'conditions': ['snow']}]}})
    d = r.data
    assert (d.hflip_prob, d.jitter, d.jitter_prob, d.weather_prob) == (
        0.0, [0.1, 0.1, 0.1, 0.0], 1.0, 0.3)
    assert d.weather_conditions == ['fog', 'night'] and d.conditions is None
    assert [(e.dataset, e.root, e.split, e.conditions) for e in d.extra_train] == [
        ('cityscapes', '/cs', 'train', None), ('acdc', '/acdc2', 'train', ['snow'])]
