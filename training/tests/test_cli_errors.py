"""A user's mistakes in `seg-kd`: each one, built for real, gives one line on stderr and exit 2.

Every case makes the mistake with real files (a truncated safetensors, a text file named .onnx,
a path under a regular file where a folder should be: tests run as root, for whom a chmod'ed
folder stays writable) and runs the CLI in-process. The line must start with
`seg-kd <command>: error:`, name the thing at fault, and no traceback may be printed. Where a
command fails, it must leave nothing behind (no empty run folder, no partial bag or report).
"""

from pathlib import Path
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file
import yaml

from seg_kd_train import cli
from seg_kd_train.data.synth import generate_dataset

TINY_MODEL = {'name': 'swiftnet_ss_mnv4', 'num_classes': 19,
              'kwargs': {'backbone': 'mobilenetv4_conv_small', 'num_features': 16}}


def seg_kd(capsys, *argv) -> tuple[int, str, str]:
    """Run `seg-kd argv` in this process; (exit code, stdout, stderr)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line(result: tuple[int, str, str], command: str, *names: str) -> str:
    """Non-zero exit, one stderr line `seg-kd <command>: error: ...` naming `names`."""
    rc, out, err = result
    assert rc == 2, (rc, out, err)
    assert 'Traceback' not in out + err
    # besides the error, stderr may hold the progress bars of the work done before it
    lines = [line for line in err.strip().splitlines() if '%|' not in line]
    assert len(lines) == 1, err
    assert err.rstrip().endswith(lines[0])
    assert lines[0].startswith(f'seg-kd {command}: error: '), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


# -- shared files ------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic dataset, a weights file and the bad files the cases need."""
    import torch

    from seg_kd_train.models import build_model
    from seg_kd_train.models.weights import save_model_weights

    root = tmp_path_factory.mktemp('files')
    data = root / 'synth'
    generate_dataset(data, 1, (64, 32), splits=('train', 'val'), conditions=('fog',))
    model = build_model(TINY_MODEL['name'], num_classes=19, **TINY_MODEL['kwargs'])
    weights = root / 'tiny.safetensors'
    save_model_weights(weights, model, TINY_MODEL['name'], 19, TINY_MODEL['kwargs'])
    pth = root / 'tiny.pth'
    torch.save(model.state_dict(), pth)
    truncated = root / 'truncated.safetensors'
    truncated.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    text = root / 'notes.safetensors'
    text.write_text('these are my notes, not weights\n')
    bare = root / 'bare.safetensors'  # a safetensors file that save_model_weights did not write
    save_file({'w': np.zeros(3, np.float32)}, str(bare))
    text_onnx = root / 'text.onnx'
    text_onnx.write_text('not a model\n')
    broken_onnx = root / 'broken.onnx'
    broken_onnx.write_bytes(b'\x08\x07\x12\x04junk' * 40)
    a_file = root / 'file.txt'  # a regular file: nothing can be created under it
    a_file.write_text('x\n')
    wrong = root / 'wrong_layout'
    (wrong / 'images').mkdir(parents=True)
    (wrong / 'images' / 'a.png').write_bytes(b'')
    empty = root / 'empty'
    empty.mkdir()
    return {'data': data, 'weights': weights, 'pth': pth, 'truncated': truncated, 'text': text,
            'bare': bare, 'text_onnx': text_onnx, 'broken_onnx': broken_onnx, 'file': a_file,
            'wrong': wrong, 'empty': empty, 'missing': root / 'missing'}


def write_recipe(path: Path, data: Path, distill_from: Path | None = None) -> Path:
    recipe = {'name': 'tiny', 'model': TINY_MODEL,
              'data': {'root': str(data), 'conditions': ['fog'], 'crop_size': [64, 64],
                       'batch_size': 2, 'num_workers': 0},
              'train': {'steps': 1, 'eval_every': 1, 'ckpt_every': 1, 'log_every': 1,
                        'progress': False},
              'loss': {'name': 'ce'}}
    if distill_from is not None:
        recipe['teacher'] = {'weights': str(distill_from)}
        recipe['distill'] = [{'type': 'kl', 'temperature': 2.0}]
    path.write_text(yaml.safe_dump(recipe))
    return path


# -- train -------------------------------------------------------------------------------------

def train(capsys, tmp_path, recipe: Path, *extra) -> tuple[int, str, str]:
    return seg_kd(capsys, 'train', recipe, '--runs', tmp_path / 'runs', '--device', 'cpu',
                  '--threads', '1', '--no-progress', *extra)


def test_train_missing_recipe(capsys, tmp_path):
    assert_one_line(train(capsys, tmp_path, tmp_path / 'nope.yaml'), 'train', 'nope.yaml')


def test_train_yaml_syntax_error(capsys, tmp_path):
    recipe = tmp_path / 'bad.yaml'
    recipe.write_text('name: tiny\nmodel: {name: x\n')
    line = assert_one_line(train(capsys, tmp_path, recipe), 'train', 'bad.yaml')
    assert 'YAML' in line and 'line' in line


@pytest.mark.parametrize('root', ['missing', 'wrong', 'empty'])
def test_train_bad_data_root(capsys, tmp_path, files, root):
    recipe = write_recipe(tmp_path / 'r.yaml', files[root])
    assert_one_line(train(capsys, tmp_path, recipe), 'train', files[root])
    assert not (tmp_path / 'runs' / 'tiny').exists()  # no empty run folder left behind


def test_train_missing_label(capsys, tmp_path, files):
    data = tmp_path / 'data'
    shutil.copytree(files['data'], data)
    (label,) = (data / 'gt' / 'fog' / 'train').rglob('*_gt_labelTrainIds.png')
    label.unlink()
    recipe = write_recipe(tmp_path / 'r.yaml', data)
    assert_one_line(train(capsys, tmp_path, recipe), 'train', label.name)
    assert not (tmp_path / 'runs' / 'tiny').exists()


def test_train_bad_device(capsys, tmp_path, files):
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'])
    assert_one_line(train(capsys, tmp_path, recipe, '--device', 'gpu'), 'train', '--device',
                    'gpu')
    assert not (tmp_path / 'runs').exists()


def test_train_cuda_without_cuda(capsys, tmp_path, files):
    import torch

    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'])
    assert_one_line(train(capsys, tmp_path, recipe, '--device', 'cuda'), 'train',
                    '--device cuda', 'cpu')


def test_train_runs_folder_not_writable(capsys, tmp_path, files):
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'])
    runs = files['file'] / 'runs'
    assert_one_line(seg_kd(capsys, 'train', recipe, '--runs', runs, '--device', 'cpu'),
                    'train', '--runs', files['file'])


def test_train_truncated_resume_state(capsys, tmp_path, files):
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'])
    state = tmp_path / 'runs' / 'tiny' / 'last_state.safetensors'
    state.parent.mkdir(parents=True)
    state.write_bytes(files['weights'].read_bytes()[:5000])
    assert_one_line(train(capsys, tmp_path, recipe, '--resume'), 'train', state)


def test_train_bad_set_and_unknown_key(capsys, tmp_path, files):
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'])
    assert_one_line(train(capsys, tmp_path, recipe, '--set', 'train.steps'), 'train', '--set')
    assert_one_line(train(capsys, tmp_path, recipe, '--set', 'train.stepz=3'), 'train',
                    'train.stepz')


def test_corrupt_val_image_stops_before_training(capsys, tmp_path, files):
    data = tmp_path / 'data'
    shutil.copytree(files['data'], data)
    (image,) = (data / 'rgb_anon' / 'fog' / 'val').rglob('*.png')
    image.write_bytes(image.read_bytes()[:100])
    recipe = write_recipe(tmp_path / 'r.yaml', data)
    line = assert_one_line(train(capsys, tmp_path, recipe), 'train', image)
    assert 'val' in line
    assert not (tmp_path / 'runs' / 'tiny').exists()


# -- distill -----------------------------------------------------------------------------------

@pytest.mark.parametrize('teacher', ['pth', 'text', 'missing', 'truncated', 'bare', 'text_onnx'])
def test_distill_bad_teacher(capsys, tmp_path, files, teacher):
    path = files[teacher]
    recipe = write_recipe(tmp_path / 'r.yaml', files['data'], distill_from=files['weights'])
    result = seg_kd(capsys, 'distill', recipe, '--teacher', path, '--runs', tmp_path / 'runs',
                    '--device', 'cpu', '--no-progress')
    assert_one_line(result, 'distill', path)
    assert not (tmp_path / 'runs' / 'tiny').exists()


# -- eval --------------------------------------------------------------------------------------

@pytest.mark.parametrize('weights', ['pth', 'text', 'truncated', 'bare', 'missing', 'text_onnx',
                                     'broken_onnx'])
def test_eval_bad_weights(capsys, tmp_path, files, weights):
    out = tmp_path / 'report'
    result = seg_kd(capsys, 'eval', '--weights', files[weights], '--data', files['data'],
                    '--conditions', 'fog', '--out', out, '--no-progress')
    assert_one_line(result, 'eval', files[weights])
    assert not out.exists()


def test_eval_onnx_without_deploy_outputs(capsys, tmp_path, files):
    from tiny_models import make_tiny_onnx

    bare = make_tiny_onnx(tmp_path / 'bare.onnx', metadata={})
    result = seg_kd(capsys, 'eval', '--weights', bare, '--data', files['data'],
                    '--conditions', 'fog', '--out', tmp_path / 'r', '--no-progress')
    assert_one_line(result, 'eval', bare)


@pytest.mark.parametrize('root', ['missing', 'wrong', 'empty'])
def test_eval_bad_data(capsys, tmp_path, files, root):
    out = tmp_path / 'report'
    result = seg_kd(capsys, 'eval', '--weights', files['weights'], '--data', files[root],
                    '--out', out, '--no-progress')
    assert_one_line(result, 'eval', files[root])
    assert not out.exists()


def test_eval_output_not_writable(capsys, files):
    out = files['file'] / 'report'
    result = seg_kd(capsys, 'eval', '--weights', files['weights'], '--data', files['data'],
                    '--conditions', 'fog', '--out', out, '--no-progress')
    assert_one_line(result, 'eval', '--out', files['file'])


def test_eval_bad_size_and_device(capsys, files, tmp_path):
    base = ('eval', '--weights', files['weights'], '--data', files['data'], '--out',
            tmp_path / 'r')
    assert_one_line(seg_kd(capsys, *base, '--size', '64-128'), 'eval', '--size', '64-128')
    assert_one_line(seg_kd(capsys, *base, '--device', 'gpu'), 'eval', '--device', 'gpu')


# -- export ------------------------------------------------------------------------------------

@pytest.mark.parametrize('weights', ['pth', 'text', 'truncated', 'bare', 'missing'])
def test_export_bad_weights(capsys, tmp_path, files, weights):
    out = tmp_path / 'm.onnx'
    result = seg_kd(capsys, 'export', '--weights', files[weights], '--out', out,
                    '--input-size', '32x64')
    line = assert_one_line(result, 'export', files[weights])
    assert not out.exists()
    if weights == 'pth':  # not only safetensors' "header too large": what it is, what to do
        assert 'not a safetensors' in line and 'import-checkpoint' in line


@pytest.mark.parametrize('option', ['--out', '--pt2'])
def test_export_output_not_writable_found_first(capsys, tmp_path, files, option):
    bad = files['file'] / 'm.onnx'
    argv = ['export', '--weights', files['weights'], '--out', tmp_path / 'm.onnx',
            '--input-size', '32x64']
    argv += [option, bad] if option == '--pt2' else []
    if option == '--out':
        argv[4] = bad
    line = assert_one_line(seg_kd(capsys, *argv), 'export', option, files['file'])
    assert 'wrote' not in capsys.readouterr().out, line
    assert not (tmp_path / 'm.onnx').exists()  # refused before anything was exported


@pytest.mark.parametrize('root', ['missing', 'wrong', 'empty'])
def test_export_bad_calibration_data(capsys, tmp_path, files, root):
    out = tmp_path / 'm.onnx'
    result = seg_kd(capsys, 'export', '--weights', files['weights'], '--out', out,
                    '--input-size', '32x64', '--calib-data', files[root])
    assert_one_line(result, 'export', files[root])
    assert not out.exists()


@pytest.mark.parametrize('extra, named', [(('--temperature', '0'), '--temperature'),
                                          (('--temperature', 'nan'), '--temperature'),
                                          (('--opset', '12'), '--opset'),
                                          (('--input-size', '32x0'), '--input-size'),
                                          (('--calib-images', '0'), '--calib-images')])
def test_export_bad_options(capsys, tmp_path, files, extra, named):
    out = tmp_path / 'm.onnx'
    result = seg_kd(capsys, 'export', '--weights', files['weights'], '--out', out, *extra)
    assert_one_line(result, 'export', named)
    assert not out.exists()


# -- synth -------------------------------------------------------------------------------------

@pytest.mark.parametrize('extra, named', [(('--splits', 'tain'), 'tain'),
                                          (('--conditions', 'hail'), 'hail'),
                                          (('--size', '8x8'), '--size'),
                                          (('--size', '64by128'), '64by128'),
                                          (('--num', '0'), '--num'),
                                          (('--num', 'many'), 'many')])
def test_synth_bad_options(capsys, tmp_path, extra, named):
    out = tmp_path / 'synth'
    assert_one_line(seg_kd(capsys, 'synth', '--out', out, *extra), 'synth', named)
    assert not out.exists()


def test_synth_output_not_writable(capsys, files, tmp_path):
    assert_one_line(seg_kd(capsys, 'synth', '--out', files['file'] / 'synth', '--num', '1'),
                    'synth', '--out', files['file'])
    assert_one_line(seg_kd(capsys, 'synth', '--out', tmp_path / 's', '--num', '1',
                           '--preview', files['file'] / 'p.png'), 'synth', '--preview')
    assert not (tmp_path / 's').exists()


def test_synth_second_run_refuses_then_replaces(capsys, tmp_path):
    out = tmp_path / 'synth'
    argv = ('synth', '--out', out, '--splits', 'val', '--conditions', 'fog', '--seed', '0')
    assert seg_kd(capsys, *argv, '--num', '3', '--size', '32x64')[0] == 0
    before = sorted(p.name for p in out.rglob('*.png'))
    line = assert_one_line(seg_kd(capsys, *argv, '--num', '2', '--size', '64x128'), 'synth',
                           str(out), '--overwrite')
    assert 'val' in line
    assert sorted(p.name for p in out.rglob('*.png')) == before  # untouched
    # another split into the same root is no mix: allowed
    assert seg_kd(capsys, 'synth', '--out', out, '--splits', 'train', '--conditions', 'fog',
                  '--num', '1', '--size', '32x64')[0] == 0
    assert seg_kd(capsys, *argv, '--num', '2', '--size', '64x128', '--overwrite')[0] == 0
    import cv2

    val = sorted((out / 'rgb_anon' / 'fog' / 'val').rglob('*.png'))
    assert len(val) == 2  # the third old frame is gone
    assert {cv2.imread(str(p)).shape[:2] for p in val} == {(64, 128)}  # one size, HxW
    assert len(list((out / 'rgb_anon' / 'fog' / 'train').rglob('*.png'))) == 1  # kept
    assert not [p for p in out.rglob('*') if 'tmp' in p.name]


# -- make-bag ----------------------------------------------------------------------------------

@pytest.mark.parametrize('root', ['missing', 'wrong', 'empty'])
def test_make_bag_bad_data(capsys, tmp_path, files, root):
    out = tmp_path / 'bag'
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', files[root], '--out', out),
                    'make-bag', files[root])
    assert not out.exists()


@pytest.mark.parametrize('extra, named', [(('--rate', '0'), '--rate'),
                                          (('--limit', '0'), '--limit'),
                                          (('--conditions', 'hail'), 'hail'),
                                          (('--dataset', 'cityscapes', '--conditions', 'fog'),
                                           '--conditions')])
def test_make_bag_bad_options(capsys, tmp_path, files, extra, named):
    out = tmp_path / 'bag'
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', files['data'], '--out', out, *extra),
                    'make-bag', named)
    assert not out.exists()


def test_make_bag_output_exists_or_not_writable(capsys, tmp_path, files):
    out = tmp_path / 'bag'
    out.mkdir()
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', files['data'], '--out', out,
                           '--conditions', 'fog'), 'make-bag', out, '--overwrite')
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', files['data'], '--conditions', 'fog',
                           '--out', files['file'] / 'bag'), 'make-bag', '--out', files['file'])


def test_make_bag_corrupt_frame_leaves_no_partial_bag(capsys, tmp_path, files):
    data = tmp_path / 'data'
    generate_dataset(data, 3, (64, 32), splits=('val',), conditions=('fog',))
    last = sorted((data / 'rgb_anon' / 'fog' / 'val').rglob('*.png'))[-1]
    last.write_bytes(last.read_bytes()[:80])
    out = tmp_path / 'bag'
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', data, '--conditions', 'fog', '--out',
                           out), 'make-bag', last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data']  # no bag, no temp folder
    # an existing bag survives a failed --overwrite
    good = tmp_path / 'good'
    assert seg_kd(capsys, 'make-bag', '--data', files['data'], '--conditions', 'fog', '--out',
                  good)[0] == 0
    before = sorted(p.name for p in good.iterdir())
    assert_one_line(seg_kd(capsys, 'make-bag', '--data', data, '--conditions', 'fog', '--out',
                           good, '--overwrite'), 'make-bag', last)
    assert sorted(p.name for p in good.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'good']
    # without the corrupt frame, --overwrite replaces the 1-frame bag with a 2-frame one
    last.unlink()
    rc, out, _ = seg_kd(capsys, 'make-bag', '--data', data, '--conditions', 'fog', '--out',
                        good, '--overwrite')
    assert rc == 0 and f'wrote {good}: 2 frames' in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'good']


# -- bag-eval, build-engine, bench -------------------------------------------------------------

def test_bag_eval_bad_inputs_leave_no_report(capsys, tmp_path, files):
    out = tmp_path / 'report'
    assert_one_line(seg_kd(capsys, 'bag-eval', '--bag', files['missing'], '--out', out),
                    'bag-eval', files['missing'])
    assert_one_line(seg_kd(capsys, 'bag-eval', '--bag', files['empty'], '--out', out),
                    'bag-eval', files['empty'])
    assert_one_line(seg_kd(capsys, 'bag-eval', '--bag', files['empty'], '--out', out,
                           '--rate', '0'), 'bag-eval', '--rate')
    assert not out.exists()
    assert_one_line(seg_kd(capsys, 'bag-eval', '--bag', files['empty'], '--out',
                           files['file'] / 'r'), 'bag-eval', '--out', files['file'])
    # a folder that holds something other than a report is never replaced
    assert_one_line(seg_kd(capsys, 'bag-eval', '--bag', files['empty'], '--out',
                           files['wrong']), 'bag-eval', '--out', files['wrong'])
    assert (files['wrong'] / 'images' / 'a.png').exists()


def test_build_engine_bad_inputs(capsys, tmp_path, files):
    assert_one_line(seg_kd(capsys, 'build-engine', '--onnx', files['missing']), 'build-engine',
                    files['missing'])
    assert_one_line(seg_kd(capsys, 'build-engine', '--onnx', files['text_onnx'], '--device',
                           'cpu'), 'build-engine', '--device')
    assert_one_line(seg_kd(capsys, 'build-engine', '--onnx', files['text_onnx'], '--device',
                           'gpu'), 'build-engine', '--device', 'gpu')
    assert_one_line(seg_kd(capsys, 'build-engine', '--onnx', files['text_onnx'], '--engine',
                           files['file'] / 'm.engine'), 'build-engine', '--engine',
                    files['file'])


@pytest.mark.parametrize('extra, named', [(('--models', 'resnet9000'), 'resnet9000'),
                                          (('--backends', 'tpu'), 'tpu'),
                                          (('--sizes', '512*1024'), '512*1024'),
                                          (('--iters', '0'), '--iters')])
def test_bench_bad_options(capsys, tmp_path, extra, named):
    result = seg_kd(capsys, 'bench', '--out-dir', tmp_path / 'b', *extra)
    assert_one_line(result, 'bench', named)
    assert not (tmp_path / 'b').exists()


def test_bench_output_and_calibration_checked_first(capsys, tmp_path, files):
    assert_one_line(seg_kd(capsys, 'bench', '--models', 'swiftnet_ss_rn18', '--sizes', '64x64',
                           '--backends', 'torch', '--out-dir', files['file'] / 'b'), 'bench',
                    '--out-dir', files['file'])
    assert_one_line(seg_kd(capsys, 'bench', '--models', 'swiftnet_ss_rn18', '--sizes', '64x64',
                           '--backends', 'trt-int8', '--calib-data', files['missing'],
                           '--out-dir', tmp_path / 'b'), 'bench', files['missing'])


def test_usage_mistakes_are_one_line(capsys):
    assert_one_line(seg_kd(capsys, 'train'), 'train', 'recipe')
    assert_one_line(seg_kd(capsys, 'export', '--weights', 'w.safetensors'), 'export', '--out')
    rc, _, err = seg_kd(capsys, 'nosuch')
    assert rc == 2 and 'nosuch' in err and 'Traceback' not in err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """Only a user's mistake is shortened: anything else propagates with its traceback."""
    from seg_kd_train.commands import synth

    def broken(args):
        raise ZeroDivisionError('a bug')
    monkeypatch.setattr(synth, 'run', broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(['synth', '--out', str(tmp_path / 's')])
