"""Training tests: DDS on the loopback like the runtime's, and the runtime's test helpers."""

import os
from pathlib import Path
import sys

import pytest

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', '73')
# tiny_models and node_harness live with the runtime's tests; the integration tests reuse them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'test'))


@pytest.fixture
def torch_one_thread():
    """Run torch on one thread: on a shared 2-core CPU, OpenMP threads spin-waiting for each other
    make small training steps many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny synthetic dataset, a weights file and the bad files seg-kd's mistake tests need."""
    from cli_mistakes import TINY_MODEL
    import numpy as np
    from safetensors.numpy import save_file
    import torch

    from seg_kd_train.data.synth import generate_dataset
    from seg_kd_train.models import build_model
    from seg_kd_train.models.weights import save_model_weights

    root = tmp_path_factory.mktemp('files')
    data = root / 'synth'
    generate_dataset(data, 1, (64, 32), splits=('train', 'val'), conditions=('fog',))
    model = build_model(TINY_MODEL['name'], num_classes=19, **TINY_MODEL['kwargs'])
    weights = root / 'tiny.safetensors'
    save_model_weights(weights, model, TINY_MODEL['name'], 19, TINY_MODEL['kwargs'])
    pth = root / 'tiny.pth'
    torch.save(model.state_dict(), pth)
    truncated = root / 'truncated.safetensors'
    truncated.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    text = root / 'notes.safetensors'
    text.write_text('these are my notes, not weights\n')
    bare = root / 'bare.safetensors'  # a safetensors file that save_model_weights did not write
    save_file({'w': np.zeros(3, np.float32)}, str(bare))
    text_onnx = root / 'text.onnx'
    text_onnx.write_text('not a model\n')
    broken_onnx = root / 'broken.onnx'
    broken_onnx.write_bytes(b'\x08\x07\x12\x04junk' * 40)
    a_file = root / 'file.txt'  # a regular file: nothing can be created under it
    a_file.write_text('x\n')
    wrong = root / 'wrong_layout'
    (wrong / 'images').mkdir(parents=True)
    (wrong / 'images' / 'a.png').write_bytes(b'')
    empty = root / 'empty'
    empty.mkdir()
    return {'data': data, 'weights': weights, 'pth': pth, 'truncated': truncated, 'text': text,
            'bare': bare, 'text_onnx': text_onnx, 'broken_onnx': broken_onnx, 'file': a_file,
            'wrong': wrong, 'empty': empty, 'missing': root / 'missing'}
