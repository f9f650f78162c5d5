"""`bash bench/gpu_check.sh --dry-run`: the GPU check's whole plan on the CPU, tiny sizes.

A broken GPU check must be found here, before a minute of a lent GPU is spent on it. The script
runs as it would there (its own processes, the real CLI, export, backends and, where rclpy is
importable, the node over DDS); its budgets are stretched so that a loaded machine only makes it
slower, never a failure.
"""

import json
import math
import os
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[3]
PARTS = ('train', 'infer', 'runtime', 'tensorrt')


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(['bash', 'bench/gpu_check.sh', '--dry-run', str(out), '--time-scale',
                           '4'], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((out / 'gpu_check.json').read_text())
    return {'out': out, 'stdout': done.stdout, 'result': result}


@pytest.mark.slow
def test_every_part_runs_and_the_summary_comes_last(dry_run):
    result = dry_run['result']
    assert result['dry_run'] is True
    assert list(result['parts']) == list(PARTS)
    bad = {k: (p['status'], p.get('reason')) for k, p in result['parts'].items()
           if p['status'] != 'ok'}
    assert not bad, f"{bad}\n{(dry_run['out'] / 'gpu_check.log').read_text()[-4000:]}"
    env = result['environment']
    assert env['torch'] and env['python'] and env['gpu'] == 'none'
    lines = dry_run['stdout'].strip().splitlines()
    assert lines[0].startswith('GPU check (DRY RUN, CPU): ')
    assert lines[-1].startswith('wrote ') and lines[-1].endswith('gpu_check.md')
    assert (dry_run['out'] / 'gpu_check.log').stat().st_size > 0


@pytest.mark.slow
def test_training_steps_are_finite_and_resumed(dry_run):
    rows = dry_run['result']['parts']['train']['rows']
    modes = {(r['recipe'], r['mode'].split()[0]) for r in rows}
    assert {('teacher', 'fp32'), ('teacher', 'bf16'), ('student_cwd_kl', 'fp32'),
            ('student_cwd_kl', 'bf16')} <= modes
    for r in rows:
        assert len(r['losses']) == 2 and all(math.isfinite(v) for v in r['losses']), r
        assert r['resume'] == '1 -> 2'


@pytest.mark.slow
def test_inference_paths_agree_with_fp32_and_the_reference_is_cited(dry_run):
    rows = dry_run['result']['parts']['infer']['rows']
    paths = {(r['model'], r['size'], r['path']) for r in rows}
    for model in ('pidnet_s', 'swiftnet_ss_mnv4'):
        for size in ('64x32', '128x64'):
            assert {(model, size, p) for p in ('fp32', 'bf16', 'channels_last')} <= paths
    for r in rows:
        assert r['fps'] > 0 and r['p99_ms'] >= r['median_ms'] > 0
        if r['path'] == 'fp32':
            assert r['agreement_pct'] == 100.0
        elif 'agreement_pct' in r:
            assert r['agreement_pct'] > 90.0, r  # bf16 flips near-tied random-weight pixels
    reference = [r for r in rows if 'published_fps' in r]
    assert len(reference) == 1 and reference[0]['published_fps'] == 93.2
    skipped = {s['step'] for s in dry_run['result']['parts']['infer']['steps']
               if s['status'] == 'skipped'}
    assert skipped == {'fp16 (every model)', 'cuda_graph (every model)',
                       'compile (every model)'}


@pytest.mark.slow
def test_runtime_paths_match_onnxruntime(dry_run):
    part = dry_run['result']['parts']['runtime']
    rows = {r['path']: r for r in part['rows']}
    assert rows['torch backend .pt2 (cpu)']['agreement_pct'] >= 99.9
    assert rows['frame pipeline, torch backend (cpu)']['agreement_pct'] >= 99.9
    node = [s for s in part['steps'] if s['step'] == 'segmenter node over DDS']
    assert node and node[0]['status'] in ('ok', 'skipped')
    if node[0]['status'] == 'ok':  # rclpy importable: the real node process over DDS
        row = rows['segmenter node over DDS, torch backend (cpu)']
        assert row['agreement_pct'] >= 99.9 and row['node_exit_code'] == 0


@pytest.mark.slow
def test_tensorrt_tests_report_their_skip_reason(dry_run):
    row = dry_run['result']['parts']['tensorrt']['rows'][0]
    assert row['tests'] > 0 and row['failures'] == row['errors'] == 0
    if row['skipped']:
        assert row['skip_reasons'] and all(row['skip_reasons'])


@pytest.mark.slow
def test_markdown_has_every_section(dry_run):
    text = (dry_run['out'] / 'gpu_check.md').read_text()
    assert text.startswith('# GPU check (dry run on the CPU)')
    for title in ('(a) Training', '(b) Inference', '(c) The runtime', '(d) The TensorRT'):
        assert f'## {title}' in text
    assert 'PIDNet paper, Xu et al., CVPR 2023' in text


def test_gpu_plan_fits_eight_minutes_and_names_what_exists():
    sys.path.insert(0, str(REPO))
    from bench.gpu_check.__main__ import gpu_plan

    plan = gpu_plan()
    # no part runs past the deadline (each hard limit is cut to what is left); 10 s to start
    assert plan['deadline_s'] <= 8 * 60 - 10
    assert sum(plan['budgets'].values()) <= plan['deadline_s']
    infer = plan['infer']
    assert [512, 1024] in infer['sizes'] and [1024, 2048] in infer['sizes']
    assert infer['reference']['size'] in infer['sizes']
    assert all(s in infer['sizes'] for s in infer['compile_sizes'])  # compared with fp32 there
    for recipe in plan['train']['recipes']:
        assert (REPO / recipe['recipe']).is_file(), recipe
    assert (REPO / plan['tensorrt']['test_file']).is_file()
    pins = (REPO / 'bench/gpu_check/ros_wheels.txt').read_text()
    for line in (REPO / 'requirements.txt').read_text().splitlines():
        if line.startswith('ros-kilted-'):  # the node's five pins travel at the same versions
            assert line in pins, line
