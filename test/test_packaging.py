"""A real `colcon build` of the package into a temporary install space, then its executable.

`--paths <repo root>` keeps colcon from crawling .venv/ or training/; the build and install
spaces are under tmp_path so the checkout is left as it was.
"""

import os
from pathlib import Path
import shutil
import subprocess
import sys

from node_harness import START_TIMEOUT, NodeProcess, node_args, node_env
import pytest
from tiny_models import make_tiny_onnx

REPO = Path(__file__).resolve().parents[1]
PKG = 'seg_kd_ros'
COLCON = shutil.which('colcon', path=str(Path(sys.executable).parent)) or shutil.which('colcon')


@pytest.fixture(scope='module')
def install(tmp_path_factory):
    if COLCON is None:
        pytest.skip('colcon is not installed')
    tmp = tmp_path_factory.mktemp('colcon')
    done = subprocess.run(
        [COLCON, '--log-base', str(tmp / 'log'), 'build', '--paths', str(REPO),
         '--build-base', str(tmp / 'build'), '--install-base', str(tmp / 'install')],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        env=node_env())
    assert done.returncode == 0, done.stdout
    assert f'Finished <<< {PKG}' in done.stdout, done.stdout
    return tmp / 'install' / PKG


def site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob('lib/python3*/site-packages'))
    assert found, f'no site-packages under {prefix}'
    return found[0]


def installed_env(prefix: Path) -> dict:
    return node_env({'PYTHONPATH': os.pathsep.join(
        [str(site_packages(prefix))] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
        'AMENT_PREFIX_PATH': str(prefix)})


def test_installed_layout(install):
    share = install / 'share' / PKG
    exe = install / 'lib' / PKG / 'segmenter_node'
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PKG).is_file()
    for rel in ('package.xml', 'launch/segmenter.launch.py', 'config/segmenter.yaml',
                'config/fastdds_shm.xml'):
        installed, source = share / rel, REPO / rel
        assert installed.is_file(), rel
        assert installed.read_bytes() == source.read_bytes(), rel
    package = site_packages(install) / PKG
    for module in ('segmenter_node.py', 'node_parameters.py', 'image_conversion.py',
                   'backends/__init__.py', 'backends/onnxruntime_backend.py'):
        assert (package / module).is_file(), module


def test_installed_package_is_imported_from_the_install_space(install):
    done = subprocess.run([sys.executable, '-c', 'import seg_kd_ros; print(seg_kd_ros.__file__)'],
                          cwd=install, stdout=subprocess.PIPE, text=True,
                          env=installed_env(install), timeout=60)
    assert Path(done.stdout.strip()).is_relative_to(install), done.stdout


def test_installed_executable_fails_cleanly_then_runs(install, tmp_path):
    exe = str(install / 'lib' / PKG / 'segmenter_node')
    done = subprocess.run(node_args(tmp_path / 'missing.onnx', executable=exe),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=installed_env(install), timeout=START_TIMEOUT, cwd=tmp_path)
    assert done.returncode != 0
    assert 'cannot start' in done.stdout and 'missing.onnx' in done.stdout, done.stdout
    assert 'Traceback' not in done.stdout

    model = make_tiny_onnx(tmp_path / 'tiny.onnx', 16, 32)
    node = NodeProcess(node_args(model, executable=exe), tmp_path / 'installed_node.log',
                       env=installed_env(install))
    node.wait_ready()
    assert node.stop() == 0, node.output()
