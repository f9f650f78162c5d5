"""The ONNX deploy head by graph surgery (`attach_deploy_head`): what it accepts and computes."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
import pytest
from tiny_models import normalise_reference, tiny_metadata

from seg_kd_ros.model_metadata import MetadataError
from seg_kd_train.export.onnx_head import HeadError, attach_deploy_head, parse_channels

H, W = 16, 24


def logits_model(channels: int = 5, opset: int = 17, dtype=TensorProto.FLOAT,
                 dims=(1, 3, H, W), inputs: int = 1) -> onnx.ModelProto:
    """x [N, 3, H, W] -> 1x1 conv -> `logits` [N, channels, H, W] (optionally fp16)."""
    rng = np.random.default_rng(0)
    numpy_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    weight = rng.normal(0, 1, (channels, 3, 1, 1)).astype(numpy_type)
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'w'], ['logits'])], 'net',
        [helper.make_tensor_value_info(f'x{"" if i == 0 else i}', dtype, list(dims))
         for i in range(inputs)],
        [helper.make_tensor_value_info('logits', dtype, [dims[0], channels, *dims[2:]])],
        [numpy_helper.from_array(weight, 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 8
    return model


def metadata(classes: int, temperature: float = 2.0) -> dict:
    meta = tiny_metadata(H, W, temperature)
    meta['classes'] = [f'c{i}' for i in range(classes)]
    meta['palette'] = [[i, i, i] for i in range(classes)]
    return meta


def run(model: onnx.ModelProto, frames: np.ndarray):
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(['labels', 'confidence'], {'image': frames})


def frames(n: int = 1, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('opset', [13, 17, 18])
def test_head_computes_labels_and_confidence_of_the_kept_channels(opset):
    model = logits_model(6, opset)
    keep = [4, 0, 2]
    head = attach_deploy_head(model, 'logits', metadata(3), keep)
    batch = frames(1)
    labels, confidence = run(head, batch)
    weight = numpy_helper.to_array(model.graph.initializer[0])[:, :, 0, 0]
    meta = metadata(3)
    x = normalise_reference(batch, meta['mean'], meta['std'])
    logits = np.einsum('kc,nchw->nkhw', weight.astype(np.float64), x)[:, keep]
    np.testing.assert_array_equal(labels, logits.argmax(1))
    z = logits / 2.0
    probs = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(confidence, (probs / probs.sum(1, keepdims=True)).max(1),
                               atol=1e-5)
    assert labels.dtype == np.uint8 and confidence.dtype == np.float32


def test_fp16_network_and_dynamic_shapes():
    model = logits_model(4, dtype=TensorProto.FLOAT16, dims=('N', 3, 'H', 'W'))
    head = attach_deploy_head(model, 'logits', metadata(4))
    dims = head.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ['N', 'H', 'W', 3]
    labels, confidence = run(head, frames(2, 20, 30))
    assert labels.shape == confidence.shape == (2, 20, 30)
    assert np.all((confidence > 0.24) & (confidence <= 1.0))


@pytest.mark.parametrize('make, logits, meta, keep, message', [
    (lambda: logits_model(opset=12), 'logits', metadata(5), None, 'opset 12 is below 13'),
    (lambda: logits_model(inputs=2), 'logits', metadata(5), None, 'exactly one image input'),
    (lambda: logits_model(dims=(1, 1, H, W)), 'logits', metadata(5), None,
     r'must be float \[N, 3, H, W\]'),
    (lambda: logits_model(), 'scores', metadata(5), None, "no output named 'scores'"),
    (lambda: logits_model(), 'logits', metadata(4), None, 'keeping 5 logit channels for 4'),
    (lambda: logits_model(), 'logits', metadata(2), [0, 7], "channel 7 asked for, but 'logits'"),
])
def test_graphs_the_head_cannot_take(make, logits, meta, keep, message):
    with pytest.raises(HeadError, match=message):
        attach_deploy_head(make(), logits, meta, keep, source='their.onnx')


def test_metadata_is_checked_by_the_nodes_validator():
    meta = metadata(5)
    meta['std'] = [0.2, 0.0, 0.2]
    with pytest.raises(MetadataError, match="key 'std' must be positive"):
        attach_deploy_head(logits_model(), 'logits', meta)


@pytest.mark.parametrize('text, channels', [('0-18', list(range(19))), ('3', [3]),
                                            ('0,2,1', [0, 2, 1]), ('0-2, 5', [0, 1, 2, 5])])
def test_parse_channels(text, channels):
    assert parse_channels(text) == channels


@pytest.mark.parametrize('text', ['', '5-3', 'a-b', '1,1', '-1', '0-18,3'])
def test_parse_channels_rejects(text):
    with pytest.raises(ValueError, match='channels must be'):
        parse_channels(text)
