"""Mistakes in `seg-kd` synth, make-bag, bag-eval, build-engine, bench: one line, exit 2.

Every case makes the mistake with real files (a truncated safetensors, a text file named .onnx,
a path under a regular file where a folder should be: tests run as root, for whom a chmod'ed
folder stays writable) and runs the CLI in-process. The line must start with
`seg-kd <command>: error:`, name the thing at fault, and no traceback may be printed. Where a
command fails, it must leave nothing behind (no empty run folder, no partial bag or report).
"""

from cli_mistakes import assert_one_line, seg_kd
import pytest

from seg_kd_train import cli
from seg_kd_train.data.synth import generate_dataset

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
