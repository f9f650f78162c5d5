"""The dependency between the halves goes one way and the runtime core stays ROS- and torch-free.

The core (model metadata, image conversion, pre- and post-processing, the frame pipeline, the
backends) is what training builds on; only the node's modules import rclpy, only the PyTorch
backend imports torch, and nothing in seg_kd_ros imports training code. Training may import the
core but never the node.
"""

import ast
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / 'seg_kd_ros'
TRAINING = REPO / 'training' / 'seg_kd_train'
NODE_MODULES = {'segmenter_node', 'node_parameters', 'node_diagnostics'}  # the ROS side
CORE_MODULES = ['seg_kd_ros.model_metadata', 'seg_kd_ros.image_conversion',
                'seg_kd_ros.image_encodings', 'seg_kd_ros.preprocessing', 'seg_kd_ros.postprocess',
                'seg_kd_ros.node_pipeline',
                'seg_kd_ros.backends', 'seg_kd_ros.backends.onnxruntime_backend',
                'seg_kd_ros.backends.tensorrt_backend', 'seg_kd_ros.backends.tensorrt_build']


def imported_modules(path: Path) -> set[str]:
    """Every module name an `import` or `from ... import` in the file names (any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def top_level(names: set[str]) -> set[str]:
    return {name.split('.')[0] for name in names}


@pytest.mark.parametrize('path', sorted(RUNTIME.rglob('*.py')), ids=lambda p: p.name)
def test_runtime_never_imports_training(path):
    assert 'seg_kd_train' not in top_level(imported_modules(path))


@pytest.mark.parametrize('path', sorted(p for p in RUNTIME.rglob('*.py')
                                        if p.stem not in NODE_MODULES), ids=lambda p: p.name)
def test_core_imports_neither_rclpy_nor_torch(path):
    found = top_level(imported_modules(path))
    assert 'rclpy' not in found, f'{path.name} is core but imports rclpy'
    if path.name != 'torch_backend.py':  # the one backend that is PyTorch
        assert 'torch' not in found, f'{path.name} imports torch'


@pytest.mark.parametrize('path', sorted(TRAINING.rglob('*.py')),
                         ids=lambda p: str(p.relative_to(TRAINING)))
def test_training_never_imports_the_node(path):
    node_modules = {f'seg_kd_ros.{name}' for name in NODE_MODULES}
    assert not imported_modules(path) & node_modules, f'{path} imports the node'


def test_core_loads_and_runs_without_rclpy_torch_or_training(tmp_path):
    from tiny_models import make_tiny_onnx

    model = make_tiny_onnx(tmp_path / 'tiny.onnx', height=24, width=40)
    code = ('import sys, numpy as np\n'
            f'import {", ".join(CORE_MODULES)}\n'
            'from seg_kd_ros.backends import create_backend\n'
            f'create_backend({str(model)!r}).infer(np.zeros((1, 24, 40, 3), np.uint8))\n'
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'rclpy', 'torch', 'seg_kd_train', 'tensorrt'}))\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == '[]', out.stdout + out.stderr
