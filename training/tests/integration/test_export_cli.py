"""`seg-kd export` end to end (calibration data, `.pt2`), dynamic export, and `seg-kd bench`."""

import json
import os
from pathlib import Path
import stat

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seg_kd_ros.backends import create_backend
from seg_kd_train import cli
from seg_kd_train.export.deploy_head import DeployHead, Normalise, build_metadata
from seg_kd_train.export.onnx_export import (
    export_onnx,
    export_program,
    export_pt2,
    parity_check,
    random_frames,
    read_onnx_metadata,
)
from seg_kd_train.models import build_model
from seg_kd_train.models.weights import save_model_weights

MODEL_KWARGS = {'backbone': 'resnet18', 'num_features': 32}


def write_acdc_split(root: Path, split: str = 'val', per_condition: int = 1,
                     size=(96, 192)) -> Path:
    """A tiny ACDC-layout split: smooth random frames with blocky random trainId labels."""
    rng = np.random.default_rng(0)
    h, w = size
    for cond in ('fog', 'night', 'rain', 'snow'):
        img_dir = root / 'rgb_anon' / cond / split / 'GOPR0001'
        gt_dir = root / 'gt' / cond / split / 'GOPR0001'
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(per_condition):
            rgb = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            label = rng.integers(0, 19, (h // 16, w // 16), dtype=np.uint8)
            label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
            label[:4] = 255
            cv2.imwrite(str(img_dir / f'frame{i}_rgb_anon.png'), rgb[..., ::-1])
            cv2.imwrite(str(gt_dir / f'frame{i}_gt_labelTrainIds.png'), label)
    return root


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = build_model('swiftnet_ss_rn18', **MODEL_KWARGS)
    path = tmp_path / 'runs' / 'student' / 'best.safetensors'
    save_model_weights(path, model, 'swiftnet_ss_rn18', 19, MODEL_KWARGS)
    return path


@pytest.mark.slow
def test_export_command_calibrated_with_pt2(weights, tmp_path, capsys):
    umask = os.umask(0o022)
    os.umask(umask)
    data = write_acdc_split(tmp_path / 'data')
    out, pt2 = tmp_path / 'student.onnx', tmp_path / 'student.pt2'
    code = cli.main(['export', '--weights', str(weights), '--out', str(out), '--input-size',
                     '128x256', '--calib-data', str(data), '--pt2', str(pt2)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'calibration: temperature' in printed and 'ECE' in printed
    assert 'parity PyTorch vs ONNX Runtime: label agreement' in printed

    meta = read_onnx_metadata(out)
    calibration = meta['calibration']
    assert meta['model_name'] == 'swiftnet_ss_rn18' and meta['input_size'] == [128, 256]
    assert meta['model_kwargs'] == MODEL_KWARGS
    assert meta['temperature'] == pytest.approx(calibration['temperature'])
    assert calibration['images'] == 4 and calibration['pixels'] > 0
    assert calibration['nll_after'] <= calibration['nll_before'] + 1e-6
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 128, 256, 3]
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(pt2.stat().st_mode) == 0o666 & ~umask

    # The node runs the exported file alone; the .pt2 agrees with it.
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 128, 256, 3), dtype=np.uint8)
    with create_backend(out, 'auto', 'cpu') as backend:
        labels, confidence = backend.infer(frames)
    model = build_model('swiftnet_ss_rn18', **MODEL_KWARGS)
    from safetensors.torch import load_file
    model.load_state_dict(load_file(str(weights)))
    with torch.no_grad():
        logits = model.eval()(Normalise(meta['mean'], meta['std'])(torch.from_numpy(frames)))
    assert np.mean(labels == logits.argmax(1).numpy()) >= 0.999
    expected = torch.softmax(logits / meta['temperature'], 1).amax(1).numpy()
    assert np.abs(confidence - expected).max() < 1e-3

    extra = {'seg_kd_ros.json': ''}
    program = torch.export.load(str(pt2), extra_files=extra)
    assert json.loads(extra['seg_kd_ros.json']) == meta
    pt_labels, _ = program.module()(torch.from_numpy(frames[:1]))  # the same bytes
    assert pt_labels.dtype == torch.uint8 and np.array_equal(pt_labels.numpy(), labels[:1])
    with create_backend(pt2, 'auto', 'cpu') as backend:
        pt2_labels, _ = backend.infer(frames)
    assert np.mean(pt2_labels == labels) >= 0.999


def test_dynamic_export_takes_other_batch_and_size(tmp_path):
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 19, 1))

        def forward(self, x):
            return torch.nn.functional.interpolate(self.body(x), size=x.shape[2:],
                                                   mode='bilinear', align_corners=False)

    torch.manual_seed(0)
    head = DeployHead(Tiny(), 2.0).eval()
    metadata = build_metadata('tiny', 19, (64, 128), 2.0)
    path = export_onnx(head, tmp_path / 'dyn.onnx', metadata, dynamic=True)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, True, True, False]
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    frames = random_frames((96, 160), batch=3)
    labels, _ = session.run(['labels', 'confidence'], {'image': frames})
    with torch.no_grad():
        expected, _ = head(torch.from_numpy(frames))
    assert labels.shape == (3, 96, 160) and np.mean(labels == expected.numpy()) >= 0.999
    report = parity_check(head, path, random_frames((64, 128), batch=3))
    assert report.pixels == 3 * 64 * 128 and report.label_agreement >= 0.999
    program = export_program(head, (64, 128), dynamic=True)
    pt2 = export_pt2(program, tmp_path / 'dyn.pt2', metadata)
    labels, _ = torch.export.load(str(pt2)).module()(torch.from_numpy(random_frames((32, 64), 2)))
    assert labels.shape == (2, 32, 64)


def test_export_command_bad_weights(tmp_path, capsys):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'not safetensors')
    assert cli.main(['export', '--weights', str(bad), '--out', str(tmp_path / 'x.onnx')]) == 2
    err = capsys.readouterr().err.strip()
    assert 'bad.safetensors' in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.slow
def test_bench_command_writes_json_and_markdown(tmp_path, capsys):
    out_dir = tmp_path / 'bench'
    code = cli.main(['bench', '--models', 'pidnet_s', '--sizes', '64x128',
                     '--backends', 'torch,ort-cpu,ort-cuda,trt-fp16,trt-int8', '--warmup', '1',
                     '--iters', '3', '--out-dir', str(out_dir)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads((out_dir / 'bench.json').read_text())
    rows = {r['backend']: r for r in doc['rows']}
    assert set(rows) == {'torch', 'ort-cpu', 'ort-cuda', 'trt-fp16', 'trt-int8'}
    for backend in ('torch', 'ort-cpu'):
        row = rows[backend]
        assert row['skipped'] == '' and row['median_ms'] > 0 and row['p99_ms'] >= row['median_ms']
        assert row['fps'] == pytest.approx(1000 / row['median_ms'])
        assert row['params_m'] == pytest.approx(7.6, abs=0.2)
        assert row['peak_mem_mib'] > 50  # a whole process: interpreter, torch or onnxruntime
    assert rows['trt-int8']['skipped']  # no GPU here, or no calibration data on a GPU
    markdown = (out_dir / 'bench.md').read_text()
    assert '| pidnet_s | ort-cpu | cpu | 64x128 |' in markdown  # HxW, as --sizes
    assert 'median (ms)' in printed
