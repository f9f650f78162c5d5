"""Export every student with the deploy head: ONNX checks, parity, and the node's backend on it."""

import json

import numpy as np
import onnx
import pytest
import torch

from seg_kd_ros.backends import create_backend
from seg_kd_ros.model_metadata import METADATA_KEY, ModelMetadata
from seg_kd_train.export.deploy_head import DeployHead, Normalise, build_metadata
from seg_kd_train.export.onnx_export import (
    export_onnx,
    parity_check,
    random_frames,
    read_onnx_metadata,
)
from seg_kd_train.models import TEACHER, build_model, list_models

SIZE = (128, 256)  # (H, W): small, so every student exports within the test budget
STUDENTS = [m for m in list_models() if m != TEACHER]


def uint8_frames(n: int, seed: int = 0) -> np.ndarray:
    """Smooth colour blobs, as uint8 RGB frames (what the node receives)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, SIZE[0] // 16, SIZE[1] // 16, 3), dtype=np.uint8)
    frames = coarse.repeat(16, axis=1).repeat(16, axis=2)
    return np.ascontiguousarray(frames)


def test_students_exist():
    assert len(STUDENTS) >= 8, STUDENTS
    assert TEACHER in list_models()


@pytest.mark.slow
@pytest.mark.parametrize('name', STUDENTS)
def test_export_parity_and_node_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(name).eval()
    temperature = 1.7
    head = DeployHead(model, temperature).eval()
    metadata = build_metadata(name, 19, SIZE, temperature, extra={'note': 'test'})
    path = export_onnx(head, tmp_path / f'{name}.onnx', metadata)

    model_proto = onnx.load(str(path))
    onnx.checker.check_model(model_proto, full_check=True)
    assert model_proto.opset_import[0].version >= 17
    assert [i.name for i in model_proto.graph.input] == ['image']
    image = model_proto.graph.input[0].type.tensor_type
    assert image.elem_type == onnx.TensorProto.UINT8  # the camera's bytes (format 2)
    assert [d.dim_value for d in image.shape.dim] == [1, *SIZE, 3]
    assert [o.name for o in model_proto.graph.output] == ['labels', 'confidence']
    assert model_proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    entries = [p for p in model_proto.metadata_props if p.key == METADATA_KEY]
    assert len(entries) == 1
    stored = json.loads(entries[0].value)
    assert stored == read_onnx_metadata(path) == metadata
    assert ModelMetadata.from_dict(stored, 'test').temperature == temperature

    report = parity_check(head, path, random_frames(SIZE))
    assert report.label_agreement >= 0.999, report
    assert report.max_confidence_diff < 5e-3, report

    # The node's backend, given nothing but the file, reproduces PyTorch's labels.
    frames = uint8_frames(2)
    with create_backend(path, 'auto', 'cpu') as backend:
        assert backend.metadata.model_name == name
        assert backend.metadata.input_size == SIZE
        assert backend.metadata.temperature == pytest.approx(temperature)
        labels, confidence = backend.infer(frames)
    with torch.no_grad():
        logits = model(Normalise(stored['mean'], stored['std'])(torch.from_numpy(frames)))
    expected_labels = logits.argmax(1).numpy().astype(np.uint8)
    expected_conf = torch.softmax(logits / temperature, 1).amax(1).numpy()
    assert labels.dtype == np.uint8 and labels.shape == (2, *SIZE)
    assert np.mean(labels == expected_labels) >= 0.999
    assert np.abs(confidence - expected_conf).max() < 5e-3
    assert 1 / 19 - 1e-6 <= confidence.min() and confidence.max() <= 1.0


def test_deploy_head_rejects_bad_temperature_and_metadata():
    with pytest.raises(ValueError, match='temperature'):
        DeployHead(torch.nn.Identity(), 0.0)
    with pytest.raises(ValueError, match='override'):
        build_metadata('x', 19, SIZE, extra={'classes': []})
    with pytest.raises(ValueError, match='input_size'):
        build_metadata('x', 19, (0, 10))


def test_normalise_is_the_formula_on_every_byte():
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 256, 1).expand(1, 1, 256, 3)
    mean, std = [0.1, 0.5, 0.9], [0.3, 0.2, 0.1]
    out = Normalise(mean, std)(ramp.contiguous())
    assert out.shape == (1, 3, 1, 256) and out.dtype == torch.float32
    exact = (np.arange(256) / 255.0 - np.array(mean)[:, None]) / np.array(std)[:, None]
    np.testing.assert_allclose(out[0, :, 0].numpy(), exact, rtol=0, atol=2e-6)


def test_export_and_eval_keep_the_classes_a_weights_file_carries(tmp_path):
    """Names and colours stored by `import-checkpoint --classes` reach the model file and eval."""
    from seg_kd_train.evaluation.evaluate import open_for_evaluation
    from seg_kd_train.export.from_weights import export_weights
    from seg_kd_train.models.weights import save_model_weights

    torch.manual_seed(0)
    kwargs = {'backbone': 'mobilenetv4_conv_small', 'num_features': 16}
    names, palette = ['road', 'car', 'sky'], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    weights = tmp_path / 'w.safetensors'
    save_model_weights(weights, build_model('swiftnet_ss_mnv4', 3, **kwargs), 'swiftnet_ss_mnv4',
                       3, kwargs, extra={'classes': names, 'palette': palette})
    out = export_weights(weights, tmp_path / 'm.onnx', (64, 64), log=lambda _: None)['onnx']
    with create_backend(out, 'onnxruntime', 'cpu') as backend:
        assert backend.metadata.classes == names
        assert backend.metadata.palette == palette
    evaluated = open_for_evaluation(weights, 'cpu')
    assert (evaluated.names, evaluated.palette) == (names, palette)
