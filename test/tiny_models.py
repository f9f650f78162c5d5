"""Tiny ONNX models that follow docs/model_file.md, built with onnx.helper (no torch needed).

The graph takes the camera's bytes (uint8 `[N, H, W, 3]` RGB, format 2) and normalises them itself;
the network is a 1x1 convolution from RGB to class logits, optionally preceded by a stack of 3x3
convolutions that only make it slow (for overload tests), followed by the deploy head.
"""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seg_kd_ros.model_metadata import FORMAT_VERSION, load_classes_file

# The shipped classes file is the one source of names and colours.
CITYSCAPES_CLASSES, CITYSCAPES_PALETTE = load_classes_file(
    Path(__file__).resolve().parents[1] / 'config' / 'cityscapes_classes.yaml')
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def tiny_metadata(height: int, width: int, temperature: float = 1.0) -> dict:
    """Metadata object of docs/model_file.md for a model of the given input size."""
    return {
        'format': FORMAT_VERSION,
        'model_name': 'tiny_test_model',
        'classes': CITYSCAPES_CLASSES,
        'palette': CITYSCAPES_PALETTE,
        'mean': IMAGENET_MEAN,
        'std': IMAGENET_STD,
        'input_size': [height, width],
        'temperature': temperature,
        'ignore_index': 255,
    }


def normalisation_constants(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """float32 `[1, 3, 1, 1]` constants `255 mean` and `1 / (255 std)`, as the graph holds them."""
    mean255 = (255.0 * np.asarray(mean, np.float64)).astype(np.float32).reshape(1, 3, 1, 1)
    scale = (1.0 / (255.0 * np.asarray(std, np.float64))).astype(np.float32).reshape(1, 3, 1, 1)
    return mean255, scale


def normalise_reference(frames: np.ndarray, mean, std) -> np.ndarray:
    """What the graph's first nodes compute: uint8 NHWC -> float32 NCHW, `(x - 255m) / 255s`."""
    mean255, scale = normalisation_constants(mean, std)
    return (frames.transpose(0, 3, 1, 2).astype(np.float32) - mean255) * scale


def _triple(meta: dict | None, key: str, default) -> list:
    value = (meta or {}).get(key)
    return value if isinstance(value, list) and len(value) == 3 else default


def make_tiny_onnx(path: str | Path, height: int = 64, width: int = 128, num_classes: int = 19,
                   slow_layers: int = 0, slow_channels: int = 32, dynamic: bool = False,
                   metadata: dict | None = None, seed: int = 0) -> Path:
    """Write a tiny segmentation model to `path` and return the path.

    Args:
        path: destination `.onnx` file.
        height: network input height.
        width: network input width.
        num_classes: number of output classes.
        slow_layers: number of extra 3x3 convolutions (only there to make inference slow).
        slow_channels: channels of those convolutions.
        dynamic: export with symbolic batch, height and width.
        metadata: metadata object; defaults to `tiny_metadata(height, width)`; `{}` writes none.
        seed: seed of the random weights.
    """
    rng = np.random.default_rng(seed)
    meta = tiny_metadata(height, width) if metadata is None else metadata
    mean255, scale = normalisation_constants(_triple(meta, 'mean', IMAGENET_MEAN),
                                             _triple(meta, 'std', IMAGENET_STD))
    inits = [numpy_helper.from_array(mean255, 'm255'), numpy_helper.from_array(scale, 'inv_s255')]
    nodes = [helper.make_node('Transpose', ['image'], ['nchw'], perm=[0, 3, 1, 2]),
             helper.make_node('Cast', ['nchw'], ['nchw_f'], to=TensorProto.FLOAT),
             helper.make_node('Sub', ['nchw_f', 'm255'], ['centred']),
             helper.make_node('Mul', ['centred', 'inv_s255'], ['x'])]
    x, channels = 'x', 3
    for i in range(slow_layers):
        w = rng.normal(0, 0.1, (slow_channels, channels, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f'slow_w{i}'))
        nodes.append(helper.make_node('Conv', [x, f'slow_w{i}'], [f'slow{i}'], pads=[1, 1, 1, 1]))
        x, channels = f'slow{i}', slow_channels
    w = rng.normal(0, 1.0, (num_classes, channels, 1, 1)).astype(np.float32)
    b = rng.normal(0, 0.5, (num_classes,)).astype(np.float32)
    temperature = float(meta.get('temperature', 1.0)) if meta else 1.0
    inits += [numpy_helper.from_array(w, 'head_w'), numpy_helper.from_array(b, 'head_b'),
              numpy_helper.from_array(np.array(temperature, np.float32), 'temperature')]
    nodes += [
        helper.make_node('Conv', [x, 'head_w', 'head_b'], ['logits']),
        helper.make_node('Div', ['logits', 'temperature'], ['scaled']),
        helper.make_node('Softmax', ['scaled'], ['probs'], axis=1),
        helper.make_node('ReduceMax', ['probs'], ['confidence'], axes=[1], keepdims=0),
        helper.make_node('ArgMax', ['logits'], ['labels64'], axis=1, keepdims=0),
        helper.make_node('Cast', ['labels64'], ['labels'], to=TensorProto.UINT8),
    ]
    n, h, w_ = ('N', 'H', 'W') if dynamic else (1, height, width)
    graph = helper.make_graph(
        nodes, 'tiny_segmenter',
        [helper.make_tensor_value_info('image', TensorProto.UINT8, [n, h, w_, 3])],
        [helper.make_tensor_value_info('labels', TensorProto.UINT8, [n, h, w_]),
         helper.make_tensor_value_info('confidence', TensorProto.FLOAT, [n, h, w_])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 9
    if meta:
        helper.set_model_props(model, {'seg_kd_ros': json.dumps(meta)})
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save(model, str(path))
    return path
