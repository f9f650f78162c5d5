"""End to end through the CLI on tiny synthetic data: synth, train a teacher, distil, evaluate."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from safetensors import safe_open
import torch
import yaml

from seg_kd_train.cli import main
from seg_kd_train.models.weights import load_model_weights

RECIPES = Path(__file__).resolve().parents[2] / 'config' / 'recipes'
FAST = ['--steps', '4', '--set', 'train.eval_every=2', '--set', 'train.ckpt_every=2',
        '--set', 'train.log_every=1', '--set', 'data.crop_size=[64, 64]', '--set',
        'data.batch_size=2', '--threads', '1',
        '--no-progress']


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_synth_train_distill_eval(tmp_path, capsys):
    data, runs = tmp_path / 'synth', tmp_path / 'runs'
    assert main(['synth', '--out', str(data), '--num', '2', '--size', '64x128']) == 0
    assert main(['train', str(RECIPES / 'synth_teacher.yaml'), '--data', str(data),
                 '--runs', str(runs), *FAST]) == 0
    teacher = runs / 'synth_teacher' / 'best.safetensors'
    assert teacher.is_file()
    assert main(['distill', str(RECIPES / 'synth_student_cwd_kl_border.yaml'), '--data',
                 str(data), '--teacher', str(teacher), '--runs', str(runs), *FAST]) == 0
    run = runs / 'synth_student_cwd_kl_border'
    resolved = yaml.safe_load((run / 'recipe.yaml').read_text())
    assert resolved['teacher']['weights'] == str(teacher)
    assert resolved['data']['root'] == str(data) and resolved['train']['steps'] == 4
    assert [t['type'] for t in resolved['distill']] == ['cwd', 'kl']
    logged = (run / 'train_log.csv').read_text().splitlines()
    assert logged[0].split(',')[:3] == ['step', 'lr', 'loss']
    assert {'loss_border', 'loss_cwd_features', 'loss_kl_logits'} <= set(logged[0].split(','))
    assert len(logged) == 5 and (run / 'curves.png').stat().st_size > 1000
    # the student file holds the student only: no adapter, no teacher
    with safe_open(str(run / 'best.safetensors'), framework='pt') as f:
        assert not [k for k in f.keys() if 'adapter' in k or k.startswith('teacher')]
    assert load_model_weights(run / 'best.safetensors').num_classes == 19
    capsys.readouterr()
    out = tmp_path / 'report'
    assert main(['eval', '--weights', str(run / 'best.safetensors'), '--data', str(data),
                 '--out', str(out), '--threads', '1']) == 0
    printed = capsys.readouterr().out
    for cond in ('fog', 'night', 'rain', 'snow', 'full'):
        assert cond in printed
    report = (out / 'report.md').read_text()
    assert '| full |' in report and '| road |' in report
    assert '![reliability diagram](reliability.png)' in report
    assert (out / 'reliability.png').is_file() and (out / 'overlays.png').is_file()
    metrics = json.loads((out / 'metrics.json').read_text())
    assert set(metrics) == {'fog', 'night', 'rain', 'snow', 'full'}
    assert 0.0 <= metrics['full']['miou'] <= 1.0 and 0.0 <= metrics['full']['ece'] <= 1.0
    assert metrics['full']['pixels'] == sum(metrics[c]['pixels']
                                            for c in ('fog', 'night', 'rain', 'snow'))
    # the exported ONNX (deploy head: labels + confidence) scores the same through `seg-kd eval`
    onnx_path = tmp_path / 'student.onnx'
    assert main(['export', '--weights', str(run / 'best.safetensors'), '--out', str(onnx_path),
                 '--input-size', '64x128', '--temperature', '1.0']) == 0
    assert main(['eval', '--weights', str(onnx_path), '--data', str(data), '--out',
                 str(tmp_path / 'report_onnx')]) == 0
    onnx_metrics = json.loads((tmp_path / 'report_onnx' / 'metrics.json').read_text())
    assert onnx_metrics['full']['miou'] == pytest.approx(metrics['full']['miou'], abs=1e-3)
    assert onnx_metrics['full']['ece'] == pytest.approx(metrics['full']['ece'], abs=1e-3)


def test_cli_errors_name_the_problem(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'seg_kd_train.cli']
    bad_key = subprocess.run(cmd + ['train', str(RECIPES / 'synth_teacher.yaml'), '--set',
                                    'train.lrr=0.1'], capture_output=True, text=True, env=env)
    assert bad_key.returncode != 0
    assert 'unknown key `train.lrr` (did you mean `lr`?)' in bad_key.stderr
    wrong_cmd = subprocess.run(cmd + ['distill', str(RECIPES / 'synth_student_border.yaml')],
                               capture_output=True, text=True, env=env)
    assert wrong_cmd.returncode != 0 and 'use `seg-kd train`' in wrong_cmd.stderr
