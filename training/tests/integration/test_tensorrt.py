"""TensorRT engines and backend on a GPU; skipped, with the reason, where there is none.

On a GPU machine (`pip install "tensorrt-cu12>=10,<11" "cuda-python>=12.6,<13"`) these build
engines from an exported student (uint8 camera bytes in, model-file format 2) and check them
against ONNX Runtime, the engine cache and the node's backend.
"""

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from seg_kd_ros.backends import ModelLoadError, create_backend


def _skip_reason() -> str:
    if importlib.util.find_spec('tensorrt') is None:
        return ('tensorrt is not installed (needs an NVIDIA GPU; '
                'pip install "tensorrt-cu12>=10,<11")')
    if importlib.util.find_spec('cuda') is None:
        return ('cuda-python is not installed (the TensorRT backend needs it: '
                'pip install "cuda-python>=12.6,<13")')
    if not torch.cuda.is_available():
        return 'no CUDA GPU on this machine'
    return ''


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or 'ok')

SIZE = (256, 512)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    from seg_kd_train.export.deploy_head import DeployHead, build_metadata
    from seg_kd_train.export.onnx_export import export_onnx
    from seg_kd_train.models import build_model

    torch.manual_seed(0)
    model = build_model('swiftnet_ss_rn18').eval()
    head = DeployHead(model, 1.3).eval()
    path = tmp_path_factory.mktemp('trt') / 'student.onnx'
    return export_onnx(head, path, build_metadata('swiftnet_ss_rn18', 19, SIZE, 1.3))


def frames(n=2, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, SIZE[0] // 32, SIZE[1] // 32, 3), dtype=np.uint8)
    return np.ascontiguousarray(coarse.repeat(32, axis=1).repeat(32, axis=2))


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_engine_matches_onnxruntime(exported, precision, tmp_path):
    from seg_kd_train.export.tensorrt_engine import build

    result = build(exported, tmp_path / f'student.{precision}.engine', precision)
    assert result.built and result.engine_path.is_file()
    images = frames()
    with create_backend(exported, 'onnxruntime', 'cpu') as ort_backend:
        ref_labels, ref_conf = ort_backend.infer(images)
    with create_backend(result.engine_path, 'auto', 'cuda') as trt_backend:
        assert trt_backend.name == 'tensorrt' and trt_backend.precision == precision
        labels, confidence = trt_backend.infer(images)
    agreement = float(np.mean(labels == ref_labels))
    print(f'{precision}: label agreement with ONNX Runtime {100 * agreement:.3f} %, '
          f'max confidence diff {np.abs(confidence - ref_conf).max():.2e}')
    assert labels.dtype == np.uint8 and labels.shape == ref_labels.shape
    assert agreement >= (0.999 if precision == 'fp32' else 0.995)
    assert np.abs(confidence - ref_conf).max() < (1e-3 if precision == 'fp32' else 2e-2)


def test_engine_cache_reuse_stale_and_rebuild(exported, tmp_path):
    from seg_kd_ros.backends.tensorrt_build import StaleEngineError
    from seg_kd_train.export.tensorrt_engine import build

    onnx_copy = tmp_path / 'student.onnx'
    shutil.copy(exported, onnx_copy)
    first = build(onnx_copy, precision='fp16')
    second = build(onnx_copy, precision='fp16')
    assert first.built and not second.built and second.key == first.key
    with open(onnx_copy, 'ab') as f:
        f.write(b'\0')  # the ONNX changed: its cached engine is stale
    with pytest.raises(StaleEngineError, match='onnx_sha256'):
        build(onnx_copy, precision='fp16')
    assert build(onnx_copy, precision='fp16', rebuild=True).built


def test_backend_builds_from_onnx_on_first_start(exported, tmp_path, caplog):
    onnx_copy = tmp_path / 'node.onnx'
    shutil.copy(exported, onnx_copy)
    with caplog.at_level('INFO'):
        backend = create_backend(onnx_copy, 'tensorrt', 'cuda')
    assert any('built TensorRT fp16 engine' in r.message for r in caplog.records)
    assert backend.engine_path.is_file()
    labels, _ = backend.infer(frames(1))
    assert labels.shape == (1, *SIZE)
    backend.close()


def test_corrupt_engine(exported, tmp_path):
    from seg_kd_train.export.tensorrt_engine import build

    result = build(exported, tmp_path / 'c.engine', 'fp16')
    result.engine_path.write_bytes(b'garbage' * 100)
    with pytest.raises(ModelLoadError, match='cannot deserialise'):
        create_backend(result.engine_path, 'tensorrt', 'cuda')


def test_int8_engine_with_calibration_cache(exported, tmp_path):
    from seg_kd_ros.backends.tensorrt_build import build_engine
    from seg_kd_train.export.tensorrt_engine import make_entropy_calibrator

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (2, *SIZE, 3), dtype=np.uint8) for _ in range(4)]
    cache = tmp_path / 'student.int8.calib'
    calibrator = make_entropy_calibrator(batches, 2, cache, (*SIZE, 3))
    result = build_engine(exported, tmp_path / 's.int8.engine', 'int8', calibrator=calibrator)
    assert result.built and cache.is_file()
    with create_backend(result.engine_path, 'tensorrt', 'cuda') as backend:
        assert backend.precision == 'int8'
        labels, confidence = backend.infer(frames(1))
    assert labels.shape == (1, *SIZE) and np.all((confidence >= 0) & (confidence <= 1))
