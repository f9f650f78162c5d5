"""Bicubic downsampling rewritten as a depthwise convolution: same values as torch and ORT."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
import pytest
import torch
from torch.nn import functional

from seg_kd_train.export.deploy_head import DeployHead, build_metadata
from seg_kd_train.export.onnx_export import export_onnx
from seg_kd_train.export.onnx_resize import cubic_weight, replace_cubic_downsampling
from seg_kd_train.models import build_model


def resize_graph(in_hw, out_hw, channels: int = 3, **attrs) -> onnx.ModelProto:
    """One `Resize(mode='cubic')` from `[1, C, *in_hw]` to the constant size `[1, C, *out_hw]`."""
    attrs = {'mode': 'cubic', 'cubic_coeff_a': -0.75,
             'coordinate_transformation_mode': 'half_pixel'} | attrs
    graph = helper.make_graph(
        [helper.make_node('Resize', ['x', '', '', 'sizes'], ['y'], **attrs)], 'resize',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, channels, *in_hw])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, channels, *out_hw])],
        [numpy_helper.from_array(np.array([1, channels, *out_hw], np.int64), 'sizes')])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {'x': x})[0]


def test_cubic_kernel_weights_sum_to_one_and_match_keys():
    a = -0.75
    assert cubic_weight(0.0, a) == 1.0 and cubic_weight(1.0, a) == 0.0
    assert cubic_weight(2.0, a) == pytest.approx(0.0, abs=1e-12)
    assert cubic_weight(0.5, a) == pytest.approx(0.59375)
    assert cubic_weight(1.5, a) == pytest.approx(-0.09375)
    assert 2 * (cubic_weight(0.5, a) + cubic_weight(1.5, a)) == pytest.approx(1.0)


@pytest.mark.parametrize(('in_hw', 'out_hw'), [
    ((64, 128), (32, 64)),  # factor 2: the taps leave the image, edge padding
    ((64, 128), (16, 32)),  # factor 4
    ((64, 128), (8, 16)),  # factor 8: the kernel skips pixels before its first tap
    ((48, 64), (24, 8)),  # different factors per axis
    ((6, 4), (3, 2)),  # tiny, every output pixel near a border
])
def test_rewrite_equals_torch_bicubic_and_ort_resize(in_hw, out_hw):
    model = resize_graph(in_hw, out_hw)
    x = np.random.default_rng(0).standard_normal((1, 3, *in_hw)).astype(np.float32) * 50
    want = functional.interpolate(torch.from_numpy(x), size=out_hw, mode='bicubic',
                         align_corners=False).numpy()
    before = run(model, x)
    rewritten, count = replace_cubic_downsampling(onnx.ModelProto.FromString(
        model.SerializeToString()))
    onnx.checker.check_model(rewritten, full_check=True)
    assert count == 1
    assert [n.op_type for n in rewritten.graph.node] in (['Pad', 'Conv'], ['Conv'])
    assert 'sizes' not in {t.name for t in rewritten.graph.initializer}
    after = run(rewritten, x)
    assert after.shape == want.shape
    np.testing.assert_allclose(after, want, rtol=0, atol=5e-5)  # float rounding of 16 sums
    np.testing.assert_allclose(after, before, rtol=0, atol=5e-5)


@pytest.mark.parametrize(('in_hw', 'out_hw', 'attrs'), [
    ((64, 128), (128, 256), {}),  # upsampling
    ((63, 128), (21, 64), {}),  # odd factor 3 on one axis
    ((64, 128), (24, 64), {}),  # not an integer factor
    ((64, 128), (32, 64), {'antialias': 1}),
    ((64, 128), (32, 64), {'exclude_outside': 1}),
    ((64, 128), (32, 64), {'coordinate_transformation_mode': 'align_corners'}),
    ((64, 128), (32, 64), {'mode': 'linear'}),
])
def test_other_resizes_are_left_alone(in_hw, out_hw, attrs):
    model = resize_graph(in_hw, out_hw, **attrs)
    rewritten, count = replace_cubic_downsampling(onnx.ModelProto.FromString(
        model.SerializeToString()))
    assert count == 0
    assert rewritten.SerializeToString() == model.SerializeToString()


def test_dynamic_shapes_are_left_alone():
    model = resize_graph((64, 128), (32, 64))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = 'H'
    _, count = replace_cubic_downsampling(model)
    assert count == 0


def test_pyramid_student_exports_without_cubic_resize(tmp_path):
    """swiftnet_pyr_mnv4's image pyramid (bicubic, factors 2 and 4) becomes convolutions."""
    torch.manual_seed(0)
    head = DeployHead(build_model('swiftnet_pyr_mnv4')).eval()
    path = export_onnx(head, tmp_path / 'pyr.onnx',
                       build_metadata('swiftnet_pyr_mnv4', 19, (128, 256)))
    modes = [helper.get_attribute_value(a) for n in onnx.load(str(path)).graph.node
             if n.op_type == 'Resize' for a in n.attribute if a.name == 'mode']
    assert b'cubic' not in modes
    assert sum(n.name.startswith('cubic_downsample/') for n in onnx.load(
        str(path)).graph.node if n.op_type == 'Conv') == 2
