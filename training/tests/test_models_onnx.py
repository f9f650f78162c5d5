"""ONNX export (opset 18), static and dynamic sizes, and ONNX Runtime parity.

An export costs 10-30 s of CPU, so one model per graph family is exported here: swiftnet_ss_rn18
(SPP with the aspect-ratio grid, dynamic) stands for swiftnet_ss_mnv4 and swiftnet_ss_lite_rn18
(static here); swiftnet_pyr_rn18 (per-level norms) for swiftnet_pyr_mnv4; pidnet_s (PAPPM, light
Bag) for pidnet_m, which differs only in widths; pidnet_l (DAPPM, Bag). `bench/models.py` exports
every student and checks ONNX Runtime parity at 1024x512 too.
"""

import onnx
import onnxruntime as ort
import pytest
import torch

from seg_kd_train.models import build_model, list_models

FAMILIES = {'swiftnet_ss_rn18', 'swiftnet_ss_lite_rn18', 'swiftnet_ss_mnv4', 'swiftnet_pyr_rn18',
            'swiftnet_pyr_mnv4', 'swiftnet_ss_convnext_l', 'pidnet_s', 'pidnet_m', 'pidnet_l'}

DYNAMIC = ['swiftnet_ss_rn18', 'swiftnet_pyr_rn18', 'pidnet_s', 'pidnet_l']
OPSET = 18


def _model(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # non-trivial statistics, so the parity check means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def _parity(path, model, sizes):
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert onnx.load(str(path)).opset_import[0].version >= 17
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for n, h, w in sizes:
        x = torch.randn(n, 3, h, w)
        (got,) = session.run(None, {'image': x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape == (n, 19, h, w)
        agree = (got.argmax(1) == want.argmax(1)).mean()
        assert agree >= 0.999, f'{h}x{w}: argmax agrees on {agree:.4%} of pixels'


@pytest.mark.slow
@pytest.mark.parametrize('name', DYNAMIC)
def test_dynamic_size_export_and_runtime_parity(tmp_path, name):
    model = _model(name)
    lo = model.export_min_size
    dims = {'x': {0: torch.export.Dim('batch', max=64),
                  2: torch.export.Dim('height', min=lo, max=8192),
                  3: torch.export.Dim('width', min=lo, max=8192)}}
    example = torch.randn(2, 3, lo + 3, lo + 35)  # batch 1 would be specialised
    # torch.export fails on any guard the dynamic sizes would break (no data-dependent paths)
    program = torch.export.export(model, (example,), dynamic_shapes=dims, strict=False)
    path = tmp_path / f'{name}.onnx'
    torch.onnx.export(program, (example,), str(path), input_names=['image'],
                      output_names=['logits'], opset_version=OPSET)
    # sizes other than the example's, not divisible by 32, below export_min_size too
    _parity(path, model, [(1, 64, 96), (2, 100, 140)])


def test_every_registered_model_has_an_export_family():
    assert set(list_models()) <= FAMILIES, 'a new model needs its own ONNX export test'


@pytest.mark.slow
def test_static_size_export_and_runtime_parity(tmp_path):
    model = _model('swiftnet_ss_lite_rn18')
    path = tmp_path / 'static.onnx'
    torch.onnx.export(model, (torch.randn(1, 3, 96, 160),), str(path), input_names=['image'],
                      output_names=['logits'], opset_version=OPSET)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 96, 160]
    _parity(path, model, [(1, 96, 160)])
