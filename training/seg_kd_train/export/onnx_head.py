"""The deploy head of docs/model_file.md (format 2), added to any logits ONNX by graph surgery.

One implementation of the head for every `.onnx` model file: `seg-kd export --weights` exports the
bare network (image -> logits) and `seg-kd export --onnx` takes a foreign one; both go through
`attach_deploy_head`, which

- puts the camera's bytes in front: a new input `image` uint8 `[N, H, W, 3]` RGB, transposed to
  NCHW, cast to float32 and normalised as `(x - 255 mean) * (1 / (255 std))` (float32 constants,
  the arithmetic `seg_kd_train.export.deploy_head.DeployHead` does in PyTorch);
- keeps the chosen logit channels (e.g. 19 of 20 when the model has a void class);
- upsamples logits smaller than the input to it (bilinear, half-pixel centres, as
  `F.interpolate(..., mode='bilinear', align_corners=False)`);
- returns `labels` uint8 (the first argmax over the kept channels) and `confidence` float32
  `1 / sum_c exp((z_c - max z) / T)`, the max softmax probability of `z / T` without a full softmax
  (about 10x faster in ONNX Runtime on CPU than Softmax over the class axis in NCHW).

Needs `onnx` only (no torch), so a foreign model can be wrapped on a machine without PyTorch.
"""

from collections.abc import Sequence
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seg_kd_ros.atomic_files import atomic_path
from seg_kd_ros.model_metadata import INPUT_NAME, METADATA_KEY, OUTPUT_NAMES, ModelMetadata

MIN_OPSET = 13
_PREFIX = 'deploy_head/'
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


class HeadError(ValueError):
    """A graph that cannot take the deploy head; the message says what to give instead."""


def _dims(value_info: onnx.ValueInfoProto) -> list:
    """Shape as ints (static) or strings (symbolic) or None (unknown)."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField('dim_value') else (d.dim_param or None) for d in shape.dim]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Point every use of tensor `old` (subgraphs included) at `new`."""
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField('g') else []) + list(attr.graphs):
                _rename_uses(sub, old, new)


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes, initialisers and value infos that no graph output needs."""
    def inputs_of(node):
        names = set(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField('g') else []) + list(attr.graphs):
                for inner in sub.node:
                    names |= inputs_of(inner)
        return names

    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= inputs_of(node)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def normalisation_constants(mean: Sequence[float],
                            std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """`255 mean` and `1 / (255 std)`, float32 `[1, 3, 1, 1]`: the head's `(x - a) * b`.

    Rounded to float32 once, here, so that the ONNX head, the PyTorch `Normalise` and the foreign
    parity check compute bit-identical network inputs.
    """
    mean255 = (255.0 * np.asarray(mean, np.float64)).astype(np.float32).reshape(1, 3, 1, 1)
    scale = (1.0 / (255.0 * np.asarray(std, np.float64))).astype(np.float32).reshape(1, 3, 1, 1)
    return mean255, scale


def parse_channels(text: str) -> list[int]:
    """'0-18' or '0,1,2' (or a mix, '0-10,12') -> channel indices, in order, no repeats.

    Raises:
        ValueError: an empty, negative, reversed or repeated entry.
    """
    channels: list[int] = []
    for part in str(text).replace(' ', '').split(','):
        try:
            if '-' in part:
                first, last = (int(v) for v in part.split('-'))
                if last < first:
                    raise ValueError
                channels += range(first, last + 1)
            else:
                channels.append(int(part))
        except ValueError:
            raise ValueError(f'channels must be like 0-18 or 0,1,2, got {text!r}') from None
    if not channels or min(channels) < 0 or len(set(channels)) != len(channels):
        raise ValueError(f'channels must be distinct indices >= 0, got {text!r}')
    return channels


class _Builder:
    """Adds nodes and constants with names that cannot collide with the network's."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        full = _PREFIX + name
        self.graph.initializer.append(numpy_helper.from_array(array, full))
        return full

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = _PREFIX + name
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _reduce(b: _Builder, op: str, x: str, name: str, keepdims: int, opset: int) -> str:
    if opset >= 18 or op == 'ReduceSum':  # axes became an input (ReduceSum: opset 13)
        return b.node(op, [x, b.const(name + '_axes', np.array([1], np.int64))], name,
                      keepdims=keepdims)
    return b.node(op, [x], name, axes=[1], keepdims=keepdims)


def attach_deploy_head(model: onnx.ModelProto, logits: str, metadata: dict,
                       keep_channels: Sequence[int] | None = None,
                       source: str = 'model') -> onnx.ModelProto:
    """Return a copy of `model` that follows docs/model_file.md (format 2).

    Args:
        model: a network with one float input `[N, 3, H, W]` (normalised RGB) and a logits
            output `[N, C, h, w]`, h <= H and w <= W.
        logits: name of the logits output.
        metadata: the metadata object (validated here with the node's own validator); its
            `mean`, `std` and `temperature` go into the graph.
        keep_channels: logit channels to keep, in class order (default: all).
        source: name of the model in error messages.

    Raises:
        HeadError: a graph without that output, with several or non-RGB inputs, an opset below
            13, or channels that do not match the metadata's classes.
        MetadataError: metadata the node would refuse.
    """
    meta = ModelMetadata.from_dict(metadata, source=f'{source} (metadata)')
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph, opset = model.graph, _opset(model)
    if opset < MIN_OPSET:
        raise HeadError(f'{source}: opset {opset} is below {MIN_OPSET}; convert it first '
                        f'(onnx.version_converter.convert_version(model, 17))')
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise HeadError(f'{source}: needs exactly one image input, it has '
                        f'{[i.name for i in inputs]}')
    net_in = inputs[0]
    in_dims = _dims(net_in)
    if (len(in_dims) != 4 or in_dims[1] != 3
            or net_in.type.tensor_type.elem_type not in _FLOATS):
        raise HeadError(f"{source}: input '{net_in.name}' must be float [N, 3, H, W] (RGB), "
                        f'got {in_dims}')
    outputs = {o.name: o for o in graph.output}
    if logits not in outputs:
        raise HeadError(f"{source}: no output named '{logits}'; its outputs are "
                        f'{list(outputs)} (give --logits-output)')
    for axis, (dim, size) in enumerate(zip(in_dims[2:], meta.input_size, strict=True), start=2):
        if isinstance(dim, int) and dim != size:
            raise HeadError(f"{source}: input '{net_in.name}' is {in_dims} but the input size is "
                            f'{list(meta.input_size)} (axis {axis})')
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    logit_dims = _dims(infos.get(logits, outputs[logits]))
    if len(logit_dims) != 4:
        raise HeadError(f"{source}: output '{logits}' must be [N, C, h, w] logits, got "
                        f'{logit_dims}')
    channels = list(range(logit_dims[1])) if keep_channels is None and isinstance(
        logit_dims[1], int) else list(keep_channels or [])
    if len(channels) != meta.num_classes:
        raise HeadError(f'{source}: keeping {len(channels)} logit channels for '
                        f'{meta.num_classes} classes; they must match (--keep-channels)')
    if isinstance(logit_dims[1], int) and max(channels) >= logit_dims[1]:
        raise HeadError(f"{source}: channel {max(channels)} asked for, but '{logits}' has "
                        f'{logit_dims[1]} channels')

    b = _Builder(graph)
    net_input = _PREFIX + 'network_input'
    _rename_uses(graph, net_in.name, net_input)
    graph.input.remove(net_in)
    n_dim, h_dim, w_dim = in_dims[0], in_dims[2], in_dims[3]
    graph.input.insert(0, helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8,
                                                        [n_dim, h_dim, w_dim, 3]))
    mean255, scale = normalisation_constants(meta.mean, meta.std)
    x = b.node('Transpose', [INPUT_NAME], 'nchw', perm=[0, 3, 1, 2])
    x = b.node('Cast', [x], 'float', to=TensorProto.FLOAT)
    x = b.node('Sub', [x, b.const('mean255', mean255)], 'centred')
    x = b.node('Mul', [x, b.const('inv_std255', scale)], 'normalised')
    in_type = net_in.type.tensor_type.elem_type
    if in_type != TensorProto.FLOAT:
        x = b.node('Cast', [x], 'network_dtype', to=in_type)
    b.nodes.append(helper.make_node('Identity', [x], [net_input], name=net_input))
    network = list(graph.node)
    del graph.node[:]
    graph.node.extend(b.nodes + network)  # the pre-processing first (topological order)

    b.nodes = []
    z = logits
    if infos.get(logits, outputs[logits]).type.tensor_type.elem_type != TensorProto.FLOAT:
        z = b.node('Cast', [z], 'logits_float', to=TensorProto.FLOAT)
    if channels != list(range(len(channels))) or logit_dims[1] != len(channels):
        z = b.node('Gather', [z, b.const('keep', np.array(channels, np.int64))], 'kept', axis=1)
    if logit_dims[2:] != in_dims[2:] or not all(isinstance(d, int) for d in logit_dims[2:]):
        lead = b.node('Shape', [z], 'logits_nc', start=0, end=2)
        tail = b.node('Shape', [net_input], 'input_hw', start=2, end=4)
        sizes = b.node('Concat', [lead, tail], 'sizes', axis=0)
        z = b.node('Resize', [z, '', '', sizes], 'upsampled', mode='linear',
                   coordinate_transformation_mode='half_pixel')
    labels_name, confidence_name = OUTPUT_NAMES
    labels = b.node('ArgMax', [z], 'argmax', axis=1, keepdims=0)
    b.nodes.append(helper.make_node('Cast', [labels], [labels_name], name=_PREFIX + 'labels',
                                    to=TensorProto.UINT8))
    top = _reduce(b, 'ReduceMax', z, 'top', 1, opset)
    shifted = b.node('Sub', [z, top], 'shifted')
    scaled = b.node('Mul', [shifted, b.const('inv_temperature', np.array(
        1.0 / meta.temperature, np.float32))], 'scaled')
    total = _reduce(b, 'ReduceSum', b.node('Exp', [scaled], 'exp'), 'sum', 0, opset)
    b.nodes.append(helper.make_node('Reciprocal', [total], [confidence_name],
                                    name=_PREFIX + 'confidence'))
    graph.node.extend(b.nodes)
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(labels_name, TensorProto.UINT8, [n_dim, h_dim, w_dim]),
        helper.make_tensor_value_info(confidence_name, TensorProto.FLOAT,
                                      [n_dim, h_dim, w_dim])])
    _prune(graph)
    if model.ir_version < 7:
        model.ir_version = 7
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model_file(model: onnx.ModelProto, out_path: str | Path) -> Path:
    """Write a model file atomically (umask's mode), checked with `full_check` on disk."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return out_path
