"""A user's mistakes in `seg-kd` train, distill, eval and export: one line on stderr, exit 2.

Every case makes the mistake with real files (a truncated safetensors, a text file named .onnx,
a path under a regular file where a folder should be: tests run as root, for whom a chmod'ed
folder stays writable) and runs the CLI in-process. The line must start with
`seg-kd <command>: error:`, name the thing at fault, and no traceback may be printed. Where a
command fails, it must leave nothing behind (no empty run folder, no partial bag or report).
"""

from pathlib import Path
import shutil

from cli_mistakes import assert_one_line, seg_kd, write_recipe
import pytest

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


@pytest.mark.parametrize('source, extra', [('weights', ('--classes', 'my_classes.yaml')),
                                           ('weights', ('--mean', '0.5', '0.5', '0.5')),
                                           ('onnx', ('--pt2', 'm.pt2')),
                                           ('onnx', ('--calib-data', 'data'))])
def test_export_options_of_the_other_source(capsys, tmp_path, files, source, extra):
    out = tmp_path / 'm.onnx'
    given = files['weights'] if source == 'weights' else tmp_path / 'foreign.onnx'
    result = seg_kd(capsys, 'export', f'--{source}', given, '--out', out, *extra)
    line = assert_one_line(result, 'export', extra[0], f'--{source}')
    assert 'leave it out' in line
    assert not out.exists()
