"""Bicubic downsampling by an even integer factor as a fixed depthwise convolution, in ONNX.

The SwiftNet pyramid models build their image pyramid with `F.interpolate(..., mode='bicubic')`,
which the exporter writes as ONNX `Resize(mode='cubic')`. ONNX Runtime's CPU kernel for it is
slow: the two such nodes of `swiftnet_pyr_rn18` and `swiftnet_pyr_mnv4` took about a fifth of
the whole graph's run at 1024x512 (ORT profiling, 2 threads), against a few percent for
PyTorch's `upsample_bicubic2d` in eager mode.

At an even integer factor `s` (input size = s x output size, half-pixel centres, no
antialiasing) every output pixel `i` reads the source at `s i + (s - 1) / 2`, always halfway
between two pixels, so the four taps `s i + s / 2 - 2 ... s i + s / 2 + 1` always have the same
weights `[w(1.5), w(0.5), w(0.5), w(1.5)]` of the cubic kernel (coefficient `a`). The resize is
then a depthwise convolution with stride `s` and that fixed 4x4 kernel (the outer product), after
an edge-replicating `Pad` where the taps leave the image (PyTorch and ONNX clamp the index).
Same values up to float rounding (the 16 products are summed in another order).

Only static shapes are rewritten (the usual `seg-kd export`); any other `Resize` stays as it is.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

_PREFIX = 'cubic_downsample/'


def cubic_weight(distance: float, a: float) -> float:
    """The cubic convolution kernel (Keys) at `|distance|` < 2 with coefficient `a`."""
    x = abs(distance)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


def taps(factor: int, a: float) -> tuple[np.ndarray, int, int]:
    """1-D kernel, padding before and after, for downsampling by the even `factor`.

    The kernel starts at input index `s i - pad_before`; leading zeros skip the pixels before
    the first tap when `s / 2 - 2 > 0`.
    """
    offset = factor // 2 - 2  # first tap of output 0
    weights = [cubic_weight(1.5, a), cubic_weight(0.5, a), cubic_weight(0.5, a),
               cubic_weight(1.5, a)]
    before = max(0, -offset)
    kernel = [0.0] * max(0, offset) + weights
    after = max(0, 2 - factor // 2)
    return np.asarray(kernel, np.float64), before, after


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == 'Constant' and name in node.output:
            for attr in node.attribute:
                if attr.name == 'value':
                    return numpy_helper.to_array(attr.t)
    return None


def _factors(node: onnx.NodeProto, graph: onnx.GraphProto, shapes: dict) -> list[int] | None:
    """Even integer (H, W) factors of a cubic Resize this pass can replace, else None."""
    attrs = _attrs(node)
    if (attrs.get('mode') != b'cubic' or attrs.get('antialias', 0) != 0
            or attrs.get('exclude_outside', 0) != 0
            or attrs.get('coordinate_transformation_mode', b'half_pixel')
            not in (b'half_pixel', b'pytorch_half_pixel')
            or attrs.get('keep_aspect_ratio_policy', b'stretch') != b'stretch'
            or attrs.get('axes') is not None):
        return None
    in_shape, out_shape = shapes.get(node.input[0]), shapes.get(node.output[0])
    if in_shape is None or out_shape is None or len(in_shape) != 4:
        return None
    if not all(isinstance(d, int) and d > 0 for d in in_shape + out_shape):
        return None
    if in_shape[:2] != out_shape[:2]:
        return None
    sizes = _constant(graph, node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if sizes is not None and [int(v) for v in sizes] != out_shape:
        return None
    factors = []
    for size_in, size_out in zip(in_shape[2:], out_shape[2:], strict=True):
        if size_out < 2 or size_in % size_out or (size_in // size_out) % 2:
            return None
        factors.append(size_in // size_out)
    return factors


def replace_cubic_downsampling(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite every replaceable cubic `Resize` as Pad + depthwise Conv.

    Args:
        model: a graph with static shapes (shape inference must give the resize's input and
            output shapes).

    Returns:
        (the model, changed in place, and the number of nodes rewritten).
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(
            inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField('dim_value') else None for d in dims]
    graph = model.graph
    nodes, replaced, dropped_inputs = [], 0, set()
    for node in graph.node:
        factors = _factors(node, graph, shapes) if node.op_type == 'Resize' else None
        if factors is None:
            nodes.append(node)
            continue
        dropped_inputs |= set(node.input[1:]) - {''}
        a = float(_attrs(node).get('cubic_coeff_a', -0.75))
        channels = shapes[node.input[0]][1]
        (kh, top, bottom), (kw, left, right) = (taps(f, a) for f in factors)
        kernel = np.outer(kh, kw).astype(np.float32)
        name = f'{_PREFIX}{replaced}'
        graph.initializer.append(numpy_helper.from_array(
            np.broadcast_to(kernel, (channels, 1, *kernel.shape)).copy(), f'{name}/weight'))
        x = node.input[0]
        if top or bottom or left or right:
            graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), f'{name}/pads'))
            nodes.append(helper.make_node('Pad', [x, f'{name}/pads'], [f'{name}/padded'],
                                          name=f'{name}/pad', mode='edge'))
            x = f'{name}/padded'
        nodes.append(helper.make_node('Conv', [x, f'{name}/weight'], [node.output[0]],
                                      name=f'{name}/conv', group=channels,
                                      kernel_shape=list(kernel.shape), strides=factors))
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    unused = dropped_inputs - used  # the replaced resizes' sizes, scales and roi
    kept = [t for t in graph.initializer if t.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, replaced
