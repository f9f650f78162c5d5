"""launch/segmenter.launch.py: a static check everywhere, a launch_testing run where ROS has one.

launch and launch_ros are not on PyPI, so the launch_testing run (test/launch_checks/) is skipped
here; on a ROS 2 install it builds the package with colcon, puts it on the ament index and runs
the launch file against a tiny model.
"""

import ast
import importlib.util
import os
from pathlib import Path
import shutil
import subprocess
import sys

from node_harness import node_env
import pytest
from tiny_models import make_tiny_onnx

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'segmenter.launch.py'
REQUIRED_ARGUMENTS = {'model_path', 'backend', 'device', 'image_topic', 'namespace',
                      'params_file', 'use_sim_time', 'fastdds_profile', 'log_level'}
HAVE_LAUNCH = all(importlib.util.find_spec(m) is not None
                  for m in ('launch', 'launch_ros', 'launch_testing'))


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')


def _value(node: ast.AST, constants: dict):
    """A string constant, or a module-level name bound to one."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


@pytest.fixture(scope='module')
def tree():
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def test_launch_file_parses_and_starts_our_executable(tree):
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) for t in n.targets
                 if isinstance(t, ast.Name)}
    nodes = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and _call_name(c) == 'Node']
    assert len(nodes) == 1
    kwargs = {k.arg: k.value for k in nodes[0].keywords}
    assert _value(kwargs['package'], constants) == 'seg_kd_ros'
    assert _value(kwargs['executable'], constants) == 'segmenter_node'
    assert 'parameters' in kwargs and 'remappings' in kwargs and 'namespace' in kwargs
    assert any(isinstance(f, ast.Name) and f.id == 'generate_launch_description'
               or isinstance(f, ast.FunctionDef) and f.name == 'generate_launch_description'
               for f in tree.body)


def test_every_launch_argument_has_a_description(tree):
    declared = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and _call_name(call) == 'DeclareLaunchArgument':
            name = call.args[0].value if call.args else None
            description = next((k.value for k in call.keywords if k.arg == 'description'), None)
            assert isinstance(description, ast.Constant) and description.value.strip(), name
            declared[name] = description.value
    assert REQUIRED_ARGUMENTS <= set(declared), REQUIRED_ARGUMENTS - set(declared)


def test_launch_file_uses_no_eval_and_sets_both_fastdds_variables(tree):
    names = {_call_name(c) for c in ast.walk(tree) if isinstance(c, ast.Call)}
    assert not names & {'eval', 'exec', 'PythonExpression'}
    variables = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                 and _call_name(c) == 'SetEnvironmentVariable' and c.args
                 and isinstance(c.args[0], ast.Constant)}
    # Fast DDS 3 (Jazzy, Kilted) and Fast DDS 2 (Humble) names, one chosen by ROS_DISTRO
    assert variables == {'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'}


needs_launch = pytest.mark.skipif(
    not HAVE_LAUNCH, reason='launch, launch_ros or launch_testing is not importable (not on '
    'PyPI); runs on a ROS 2 install')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):  # pragma: no cover - needs ROS 2 launch
    """The package built with colcon and put on the ament index: the launch environment."""
    tmp = tmp_path_factory.mktemp('launch')
    colcon = shutil.which('colcon', path=str(Path(sys.executable).parent)) or 'colcon'
    subprocess.run([colcon, '--log-base', str(tmp / 'log'), 'build', '--paths', str(REPO),
                    '--build-base', str(tmp / 'build'), '--install-base',
                    str(tmp / 'install')], cwd=tmp, check=True, timeout=300)
    prefix = tmp / 'install' / 'seg_kd_ros'
    site = sorted(prefix.glob('lib/python3*/site-packages'))[0]
    return tmp, node_env({
        'AMENT_PREFIX_PATH': os.pathsep.join(
            [str(prefix)] + [p for p in [os.environ.get('AMENT_PREFIX_PATH')] if p]),
        'PYTHONPATH': os.pathsep.join(
            [str(site)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
    })


@needs_launch
def test_launch_file_with_launch_testing(installed):  # pragma: no cover - needs ROS 2 launch
    tmp, env = installed
    env = dict(env, SEG_KD_TEST_MODEL=str(make_tiny_onnx(tmp / 'tiny.onnx', 16, 32)))
    check = Path(__file__).parent / 'launch_checks' / 'segmenter_launch_check.py'
    done = subprocess.run(
        [sys.executable, '-c', 'import sys; from launch_testing.launch_test import main; '
         'sys.exit(main())', str(check)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    assert done.returncode == 0, done.stdout


@needs_launch
def test_a_node_that_cannot_start_fails_the_launch(installed):  # pragma: no cover
    _, env = installed
    run = Path(__file__).parent / 'launch_checks' / 'run_launch_file.py'
    done = subprocess.run(
        [sys.executable, str(run), 'model_path:=~/seg_kd_missing.onnx', 'fastdds_profile:=env',
         'log_level:=warn'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    home = os.path.expanduser('~')
    assert f'cannot start: {home}/seg_kd_missing.onnx' in done.stdout  # ~ expanded
    assert 'segmenter_node exited with status 1' in done.stdout
