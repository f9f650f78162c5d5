"""DDP without code changes: `torchrun --nproc_per_node 2 -m seg_kd_train.cli train ...` on CPU."""

import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from seg_kd_train.data.synth import generate_dataset
from seg_kd_train.train.train_data import ResumableSampler


def test_sampler_slices_are_disjoint_and_resumable():
    ranks = [list(zip(range(12), ResumableSampler(10, 3, seed=1, rank=r, world_size=2),
                      strict=False)) for r in range(2)]
    keys = [[k for _, k in r] for r in ranks]
    # global micro-batch 0 is rank 0's first 3 keys then rank 1's first 3
    first = keys[0][:3] + keys[1][:3]
    assert len(set(first)) == 6
    epoch0 = [k for k in keys[0][:6] + keys[1][:6] if k[0] == 0]
    assert len(epoch0) == len(set(epoch0)) == 10  # one epoch: every sample once
    # starting at global micro-batch 2 continues the same stream
    resumed = list(zip(range(3), ResumableSampler(10, 3, seed=1, start_batch=2, rank=1,
                                                  world_size=2), strict=False))
    assert [k for _, k in resumed] == keys[1][6:9]


@pytest.mark.skipif(shutil.which('torchrun', path=str(Path(sys.executable).parent)) is None,
                    reason='torchrun not installed')
def test_torchrun_two_processes(tmp_path):
    data = tmp_path / 'data'
    generate_dataset(data, 2, size=(96, 48), seed=0)
    recipe = {'name': 'ddp', 'model': {'name': 'swiftnet_ss_mnv4', 'kwargs': {
        'backbone': 'mobilenetv4_conv_small', 'num_features': 16}},
        'data': {'root': str(data), 'crop_size': [48, 48], 'batch_size': 2, 'num_workers': 0},
        'train': {'steps': 2, 'eval_every': 2, 'ckpt_every': 1, 'log_every': 1,
                  'progress': False}, 'loss': {'name': 'ce'}}
    path = tmp_path / 'ddp.yaml'
    path.write_text(yaml.safe_dump(recipe))
    torchrun = str(Path(sys.executable).parent / 'torchrun')
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run([torchrun, '--nproc_per_node', '2', '--master_port', str(port), '-m',
                             'seg_kd_train.cli', 'train', str(path), '--runs',
                             str(tmp_path / 'runs'), '--device', 'cpu'],
                            capture_output=True, text=True, env=env, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / 'runs' / 'ddp'
    assert json.loads((run / 'last_state.json').read_text())['step'] == 2
    assert (run / 'best.safetensors').is_file()
    assert result.stdout.count('run directory:') == 1  # rank 0 reports
