"""Exact resume: a run stopped or killed mid-way, then resumed, ends as an uninterrupted run."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
import torch
import yaml

from seg_kd_train.config import recipe_from_dict
from seg_kd_train.data.synth import generate_dataset
from seg_kd_train.models import build_model
from seg_kd_train.models.weights import save_model_weights
from seg_kd_train.train.trainer import Trainer

STUDENT = {'name': 'swiftnet_ss_mnv4',
           'kwargs': {'backbone': 'mobilenetv4_conv_small', 'num_features': 16}}


def recipe_dict(data_root, teacher=None, **train):
    d = {'name': 'resume_test', 'seed': 3, 'model': STUDENT,
         'data': {'root': str(data_root), 'crop_size': [48, 48], 'scale_range': [0.75, 1.25],
                  'batch_size': 2, 'num_workers': 0, 'eval_size': [32, 64]},
         'train': {'steps': 5, 'lr': 1e-3, 'grad_accum': 2, 'eval_every': 3, 'ckpt_every': 2,
                   'log_every': 1, 'deterministic': True, 'progress': False, **train},
         'loss': {'name': 'border'}}
    if teacher:
        d['teacher'] = {'weights': str(teacher)}
        d['distill'] = [{'type': 'cwd', 'student': 'features', 'teacher': 'features',
                         'weight': 3.0, 'temperature': 4.0, 'adapter': 'conv_bn'},
                        {'type': 'kl', 'weight': 1.0, 'temperature': 2.0}]
    return d


def setup_data(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / 'data'
    generate_dataset(data, 2, size=(96, 48), seed=0)
    torch.manual_seed(0)
    teacher = build_model('swiftnet_ss_rn18', backbone='resnet18', num_features=32)
    path = tmp_path / 'teacher.safetensors'
    save_model_weights(path, teacher, 'swiftnet_ss_rn18', 19,
                       {'backbone': 'resnet18', 'num_features': 32})
    return data, path


pytestmark = pytest.mark.usefixtures('torch_one_thread')


def assert_same_run(a: Path, b: Path, adapters: bool) -> None:
    sa = load_file(str(a / 'last_state.safetensors'))
    sb = load_file(str(b / 'last_state.safetensors'))
    assert sa.keys() == sb.keys()
    assert any(k.startswith('task.adapters.') for k in sa) == adapters  # adapters resumed too
    assert any(k.startswith('optim.') for k in sa)
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, differ[:10]
    for name in ('last.safetensors', 'best.safetensors'):
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    for name in ('eval_log.csv', 'train_log.csv'):
        assert (a / name).read_text() == (b / name).read_text(), name


def test_stop_and_resume_matches_uninterrupted(tmp_path):
    data, teacher = setup_data(tmp_path)
    recipe = recipe_from_dict(recipe_dict(data, teacher))
    full = Trainer(recipe, tmp_path / 'full').run()
    # stopped after step 3: the last checkpoint is step 2, steps 3.. are redone on resume
    Trainer(recipe, tmp_path / 'cut', stop_after=3).run()
    state = json.loads((tmp_path / 'cut' / 'last_state.json').read_text())
    assert state['step'] == 2
    assert len((tmp_path / 'cut' / 'eval_log.csv').read_text().splitlines()) == 2  # step 3 eval
    resumed = Trainer(recipe, tmp_path / 'cut', resume=True).run()
    assert resumed == full and 'miou_full' in full
    assert_same_run(tmp_path / 'full', tmp_path / 'cut', adapters=True)
    assert (tmp_path / 'cut' / 'curves.png').stat().st_size > 1000
    assert yaml.safe_load((tmp_path / 'cut' / 'recipe.yaml').read_text())['name'] == 'resume_test'


def test_killed_process_resumes_exactly(tmp_path):
    data, _ = setup_data(tmp_path)
    d = recipe_dict(data, steps=8, eval_every=4, grad_accum=1)
    recipe_path = tmp_path / 'recipe.yaml'
    recipe_path.write_text(yaml.safe_dump(d))
    cmd = [sys.executable, '-m', 'seg_kd_train.cli', 'train', str(recipe_path), '--runs',
           str(tmp_path / 'runs'), '--device', 'cpu', '--no-progress']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    state = tmp_path / 'runs' / 'resume_test' / 'last_state.json'
    deadline = time.monotonic() + 120
    while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = json.loads(state.read_text())['step']
    assert 2 <= killed_at < 8
    subprocess.run(cmd + ['--resume'], check=True, capture_output=True, env=env)
    Trainer(recipe_from_dict(d), tmp_path / 'full').run()
    assert_same_run(tmp_path / 'full', tmp_path / 'runs' / 'resume_test', adapters=False)
