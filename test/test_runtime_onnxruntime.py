"""ONNX Runtime backend on tiny model files (docs/model_file.md), and create_backend's choices."""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_models import make_tiny_onnx, normalise_reference, tiny_metadata

from seg_kd_ros.backends import (
    InferenceBackend,
    ModelLoadError,
    check_device,
    create_backend,
    resolve_backend,
)


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp('models') / 'tiny.onnx', 24, 40, seed=3)


def images(n, height=24, width=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def direct_run(path, frames):
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(['labels', 'confidence'], {'image': frames})


def test_labels_bit_exact_with_direct_onnxruntime(tiny_model):
    backend = create_backend(tiny_model)
    assert isinstance(backend, InferenceBackend)
    assert (backend.name, backend.device, backend.precision) == ('onnxruntime', 'cpu', 'fp32')
    assert backend.metadata.input_size == (24, 40) and backend.metadata.num_classes == 19
    batch = images(1)
    labels, confidence = backend.infer(batch)
    assert labels.shape == confidence.shape == (1, 24, 40)
    assert labels.dtype == np.uint8 and confidence.dtype == np.float32
    ref_labels, ref_confidence = direct_run(tiny_model, batch)  # the camera's bytes, as they are
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(confidence, ref_confidence)
    assert len(np.unique(labels)) > 3  # the test image exercises several classes
    assert 1.0 / 19 <= confidence.min() and confidence.max() <= 1.0


def test_deploy_head_matches_numpy_reference(tiny_model):
    """Labels are the argmax and confidence the max softmax of the 1x1 conv logits."""
    model = onnx.load(str(tiny_model))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    backend = create_backend(tiny_model)
    batch = images(2, seed=5)
    labels, confidence = backend.infer(batch)
    x = normalise_reference(batch, backend.metadata.mean, backend.metadata.std)
    logits = np.einsum('kc,nchw->nkhw', weights['head_w'][:, :, 0, 0].astype(np.float64), x)
    logits += weights['head_b'][None, :, None, None]
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(labels[clear], logits.argmax(1)[clear])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(confidence, probs.max(1), atol=1e-5)


def test_batches_on_static_and_dynamic_models(tmp_path, tiny_model):
    batch = images(3, seed=1)
    static = create_backend(tiny_model)  # exported with batch 1: the backend loops
    dynamic = create_backend(make_tiny_onnx(tmp_path / 'dyn.onnx', 24, 40, dynamic=True, seed=3))
    static_out, dynamic_out = static.infer(batch), dynamic.infer(batch)
    for a, b in zip(static_out, dynamic_out, strict=True):
        assert a.shape == (3, 24, 40)
        np.testing.assert_array_equal(a, b)
    one = static.infer(batch[1:2])
    np.testing.assert_array_equal(one[0][0], static_out[0][1])


def test_temperature_in_graph_changes_confidence_not_labels(tmp_path):
    cold = create_backend(make_tiny_onnx(tmp_path / 'a.onnx', 16, 16, seed=2))
    hot = create_backend(make_tiny_onnx(tmp_path / 'b.onnx', 16, 16, seed=2,
                                        metadata=tiny_metadata(16, 16, temperature=3.0)))
    assert hot.metadata.temperature == 3.0
    batch = images(1, 16, 16)
    (l1, c1), (l2, c2) = cold.infer(batch), hot.infer(batch)
    np.testing.assert_array_equal(l1, l2)
    assert (c2 < c1).mean() > 0.9  # a higher temperature flattens the softmax


@pytest.mark.parametrize('bad, match', [
    (np.zeros((1, 24, 40, 3), np.float32), 'uint8 RGB'),
    (np.zeros((24, 40, 3), np.uint8), 'uint8 RGB'),
    (np.zeros((1, 24, 40, 4), np.uint8), 'uint8 RGB'),
    (np.zeros((0, 24, 40, 3), np.uint8), 'uint8 RGB'),
    (np.zeros((1, 48, 80, 3), np.uint8), '80x48 .* expects 40x24; resize first'),
])
def test_infer_rejects_bad_images(tiny_model, bad, match):
    backend = create_backend(tiny_model)
    with pytest.raises(ValueError, match=match):
        backend.infer(bad)
    assert backend.infer(images(1))[0].shape == (1, 24, 40)  # still usable


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match='nothing.onnx: model file does not exist'):
        create_backend(tmp_path / 'nothing.onnx')


def test_directory_instead_of_file(tmp_path):
    (tmp_path / 'dir.onnx').mkdir()
    with pytest.raises(ModelLoadError, match='dir.onnx: model file is a directory'):
        create_backend(tmp_path / 'dir.onnx')


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their mode')
def test_unreadable_file(tmp_path, tiny_model):
    path = tmp_path / 'locked.onnx'
    path.write_bytes(tiny_model.read_bytes())
    path.chmod(0)
    with pytest.raises(ModelLoadError, match='locked.onnx: cannot read model file'):
        create_backend(path)


@pytest.mark.parametrize('content', [b'', b'not an onnx file at all' * 20, 'truncate'])
def test_corrupt_file(tmp_path, tiny_model, content):
    path = tmp_path / 'corrupt.onnx'
    data = tiny_model.read_bytes()
    path.write_bytes(data[:len(data) // 2] if content == 'truncate' else content)
    with pytest.raises(ModelLoadError, match='corrupt.onnx: not a loadable ONNX model') as info:
        create_backend(path)
    assert '\n' not in str(info.value)


def test_model_without_metadata(tmp_path):
    path = make_tiny_onnx(tmp_path / 'plain.onnx', 8, 8, metadata={})
    with pytest.raises(ModelLoadError, match="plain.onnx: no 'seg_kd_ros' entry"):
        create_backend(path)


def test_model_with_invalid_metadata(tmp_path):
    meta = tiny_metadata(8, 8)
    meta['palette'] = meta['palette'][:3]
    path = make_tiny_onnx(tmp_path / 'badmeta.onnx', 8, 8, metadata=meta)
    with pytest.raises(ModelLoadError, match="badmeta.onnx: key 'palette'"):
        create_backend(path)


def test_metadata_input_size_must_match_graph(tmp_path):
    path = make_tiny_onnx(tmp_path / 'size.onnx', 8, 8, metadata=tiny_metadata(16, 8))
    with pytest.raises(ModelLoadError, match="size.onnx: input 'image' is .* input_size is"):
        create_backend(path)


def test_model_with_wrong_outputs(tmp_path, tiny_model):
    model = onnx.load(str(tiny_model))
    model.graph.output[0].name = 'labels'
    for node in model.graph.node:  # rename 'confidence' to 'probability'
        node.output[:] = ['probability' if o == 'confidence' else o for o in node.output]
    model.graph.output[1].name = 'probability'
    path = tmp_path / 'outputs.onnx'
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="outputs.onnx: model must take one input 'image'"):
        create_backend(path)


def test_cuda_without_gpu_provider_is_a_clear_error(tiny_model):
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('this onnxruntime has CUDA')
    with pytest.raises(ModelLoadError, match="tiny.onnx: device 'cuda:1' needs onnxruntime"):
        create_backend(tiny_model, device='cuda:1')


def test_backend_choice(tmp_path, tiny_model):
    assert resolve_backend('m.onnx') == 'onnxruntime'
    assert resolve_backend('m.ENGINE') == 'tensorrt'
    assert resolve_backend('m.pt2') == 'torch'
    assert resolve_backend('m.onnx', 'tensorrt') == 'tensorrt'  # builds an engine from ONNX
    with pytest.raises(ValueError, match="backend must be one of .* got 'tflite'"):
        create_backend(tiny_model, backend='tflite')
    with pytest.raises(ModelLoadError, match="m.bin: unknown model file type '.bin'"):
        resolve_backend('m.bin')
    with pytest.raises(ModelLoadError, match="backend 'torch' reads .pt2 files, not '.onnx'"):
        create_backend(tiny_model, backend='torch')
    with pytest.raises(ModelLoadError, match="backend 'onnxruntime' reads .onnx files"):
        resolve_backend('m.engine', 'onnxruntime')


@pytest.mark.parametrize('device', ['cpu', 'cuda', 'cuda:0', 'cuda:12'])
def test_good_devices(device):
    assert check_device(device) == device


@pytest.mark.parametrize('device', ['gpu', 'CUDA', 'cuda:', 'cuda:x', '', 'cpu:0', None])
def test_bad_devices(tiny_model, device):
    with pytest.raises(ValueError, match='device must be'):
        create_backend(tiny_model, device=device)


def test_close_and_context_manager(tiny_model):
    with create_backend(tiny_model) as backend:
        assert 'tiny.onnx' in repr(backend)
        backend.infer(images(1))
    with pytest.raises(Exception):  # noqa: B017 (closed: any error, as long as it fails)
        backend.infer(images(1))


def format_1_file(tmp_path, tiny_model, fmt: int):
    """The tiny model as format 1 had it: float32 NCHW input, normalised outside the graph."""
    model = onnx.load(str(tiny_model))
    del model.graph.node[:2]  # Transpose and Cast: 'image' becomes the float input
    model.graph.node[0].input[0] = 'image'
    model.graph.input[0].CopyFrom(onnx.helper.make_tensor_value_info(
        'image', onnx.TensorProto.FLOAT, [1, 3, 24, 40]))
    meta = tiny_metadata(24, 40)
    meta['format'] = fmt
    onnx.helper.set_model_props(model, {'seg_kd_ros': json.dumps(meta)})
    path = tmp_path / f'format{fmt}.onnx'
    onnx.save(model, str(path))
    return path


def test_format_1_file_is_refused_with_how_to_re_export(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="format1.onnx: key 'format' is 1: .*re-export it "
                                             'with seg-kd export') as info:
        create_backend(format_1_file(tmp_path, tiny_model, 1))
    assert '\n' not in str(info.value)


def test_float_input_is_refused_even_with_format_2_metadata(tmp_path, tiny_model):
    with pytest.raises(ModelLoadError, match="format2.onnx: 'image' must be tensor\\(uint8\\), "
                                             'not tensor\\(float\\)'):
        create_backend(format_1_file(tmp_path, tiny_model, 2))
