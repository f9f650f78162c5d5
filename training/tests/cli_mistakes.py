"""Helpers of the seg-kd mistake tests (test_cli_errors_*.py): run the CLI, check its one line."""

from pathlib import Path

import yaml

from seg_kd_train import cli

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
