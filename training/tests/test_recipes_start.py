"""Every shipped recipe starts (one training step on tiny synthetic data) or stops at once with one
line saying what is missing and how to get it.

Where a recipe needs weights files, the test gives it what a user would make: the authors'
checkpoints (random weights in their key layouts, `authors_checkpoints`) imported with
`seg-kd import-checkpoint`, and a small teacher for the distillation recipes. Recipes that ask for
`imagenet` start from `none` here: timm's ImageNet weights cannot be downloaded on the test
machine; `test_imagenet_offline_stops_with_one_line` checks what a user without them sees.
"""

from pathlib import Path

import authors_checkpoints as authors
import pytest
import torch

from seg_kd_train.cli import main
from seg_kd_train.config import RecipeError, load_recipe, recipe_from_dict
from seg_kd_train.errors import SegKdError
from seg_kd_train.models import backbones, build_model
from seg_kd_train.models.checkpoint_import import import_checkpoint
from seg_kd_train.models.weights import save_model_weights
from seg_kd_train.train.trainer import Trainer

RECIPES = sorted((Path(__file__).resolve().parents[2] / 'config' / 'recipes').glob('*.yaml'))
TINY = {'data.crop_size': [64, 64], 'data.batch_size': 2, 'data.num_workers': 0,
        'data.max_val_images': 1, 'train.steps': 2, 'train.eval_every': 100,
        'train.ckpt_every': 100, 'train.log_every': 1, 'train.progress': False}
# the authors' files a user downloads, by the weights file name the recipes use
DOWNLOADS = {
    **{f'pidnet_{v}_imagenet': lambda v=v: authors.pidnet_imagenet(v) for v in 'sml'},
    **{f'pidnet_{v}_cityscapes': lambda v=v: authors.pidnet_cityscapes(v) for v in 'sml'},
    'swiftnet_ss_rn18_cityscapes': authors.swiftnet_single_scale,
    'swiftnet_pyr_rn18_cityscapes': authors.swiftnet_pyramid,
}


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    assert main(['synth', '--out', str(root), '--num', '1', '--size', '64x128']) == 0
    return root


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Imported weights by file stem, and a small teacher for the distillation recipes."""
    folder = tmp_path_factory.mktemp('weights')
    made = {}
    for stem, download in DOWNLOADS.items():
        src = folder / f'{stem}.pt'
        torch.save(download(), src)
        made[stem] = folder / f'{stem}.safetensors'
        import_checkpoint(src, made[stem])
    torch.manual_seed(0)
    kwargs = {'backbone': 'mobilenetv4_conv_small', 'num_features': 16}
    teacher = build_model('swiftnet_ss_mnv4', **kwargs)
    made['teacher'] = folder / 'teacher.safetensors'
    save_model_weights(made['teacher'], teacher, 'swiftnet_ss_mnv4', 19, kwargs)
    return made


def test_every_recipe_has_a_file_name_it_can_be_given():
    for path in RECIPES:
        pretrained = load_recipe(path).model.pretrained
        if pretrained not in ('imagenet', 'none'):
            assert Path(pretrained).stem in DOWNLOADS, path


@pytest.mark.parametrize('path', RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_starts(tmp_path, synth, weights, torch_one_thread, path):
    shipped = load_recipe(path)
    overrides = {**TINY, 'data.root': str(synth)}
    imported = None
    if shipped.model.pretrained == 'imagenet':
        overrides['model.pretrained'] = 'none'  # no download here (module docstring)
    elif shipped.model.pretrained != 'none':
        imported = weights[Path(shipped.model.pretrained).stem]
        overrides['model.pretrained'] = str(imported)
    if shipped.teacher is not None:
        overrides['teacher.weights'] = str(weights['teacher'])
    if shipped.model.name == 'swiftnet_ss_convnext_l':
        # the recipe's ConvNeXt-L (200 M parameters) is built in test_models_forward; here a
        # ConvNeXt of the same family keeps one step of the teacher recipe within seconds
        overrides['model.kwargs'] = {'backbone': 'convnext_atto'}
    trainer = Trainer(load_recipe(path, overrides), tmp_path / 'runs', device='cpu',
                      stop_after=1)
    trainer.run()
    assert trainer.step == 1
    log = (tmp_path / 'runs' / 'train_log.csv').read_text().splitlines()
    header, row = log[0].split(','), log[1].split(',')
    assert len(log) == 2 and row[0] == '1'
    assert torch.isfinite(torch.tensor(float(row[header.index('loss')])))
    if imported is not None:  # the authors' statistics (1000 batches) went on counting
        counts = [int(m.num_batches_tracked) for m in trainer.student.modules()
                  if isinstance(m, torch.nn.BatchNorm2d)]
        if imported.stem.endswith('_imagenet'):  # the backbone; the heads start afresh
            assert min(counts) < 1000 < max(counts), counts
        else:
            assert min(counts) > 1000, counts


def test_recipe_without_its_weights_stops_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's weights/pidnet_s_imagenet.safetensors is not here
    # nor any data: the weights are checked first, before anything is read
    rc = main(['train', str(RECIPES[0].parent / 'acdc_pidnet_s.yaml'), '--data', 'no_data',
               '--runs', str(tmp_path / 'runs'), '--no-progress'])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert 'weights/pidnet_s_imagenet.safetensors not found' in err
    assert 'PIDNet_S_ImageNet.pth.tar' in err and 'seg-kd import-checkpoint' in err


def test_imagenet_offline_stops_with_one_line(tmp_path, synth, capsys, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(backbones, '_hub_reachable', lambda timeout=3.0: False)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path))  # nothing cached
    rc = main(['train', str(RECIPES[0].parent / 'acdc_rn18_border.yaml'), '--data', str(synth),
               '--runs', str(tmp_path / 'runs'), '--no-progress'])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert 'ImageNet weights for timm backbone' in err and 'model.pretrained to none' in err


def test_data_root_is_checked_before_any_model_is_built(tmp_path, monkeypatch):
    import seg_kd_train.models as models

    def no_model(*args, **kwargs):
        raise AssertionError('a model was built before the data root was checked')

    monkeypatch.setattr(models, 'build_model', no_model)
    recipe = load_recipe(RECIPES[0].parent / 'acdc_pidnet_l.yaml',
                         {'data.root': str(tmp_path / 'no_data'), 'model.pretrained': 'none'})
    with pytest.raises(SegKdError, match='no_data'):
        Trainer(recipe, tmp_path / 'runs', device='cpu').run()


def test_pretrained_reads_old_booleans_and_names_a_bad_value():
    base = {'name': 'x', 'model': {'name': 'pidnet_s'}}
    for old, new in ((True, 'imagenet'), (False, 'none')):
        recipe = recipe_from_dict({**base, 'model': {**base['model'], 'pretrained': old}})
        assert recipe.model.pretrained == new
    with pytest.raises(RecipeError, match="`model.pretrained` is 'imagent'; choose imagenet"):
        recipe_from_dict({**base, 'model': {**base['model'], 'pretrained': 'imagent'}})
