"""Bad inputs to export, engine cache and TensorRT backend: each gives one clear error."""

import importlib.util
import json

import pytest
from tiny_models import make_tiny_onnx, tiny_metadata

from seg_kd_ros.backends import ModelLoadError, create_backend
from seg_kd_ros.backends.tensorrt_backend import check_engine_compatible
from seg_kd_ros.backends.tensorrt_build import (
    StaleEngineError,
    cached_engine_usable,
    check_engine_bytes,
    engine_key,
    inspect_onnx,
    optimisation_profile,
    read_sidecar,
    sha256_file,
    sidecar_path,
    write_engine,
)
from seg_kd_train import cli
from seg_kd_train.export.onnx_export import read_onnx_metadata

HAVE_TENSORRT = importlib.util.find_spec('tensorrt') is not None
GPU = {'gpu_name': 'NVIDIA GeForce RTX 3090', 'compute_capability': '8.6'}
PROFILE = {'min': [1, 64, 128, 3], 'opt': [1, 64, 128, 3], 'max': [1, 64, 128, 3]}


@pytest.fixture
def onnx_file(tmp_path):
    return make_tiny_onnx(tmp_path / 'tiny.onnx')


@pytest.fixture
def cached_engine(tmp_path, onnx_file):
    """A (fake) engine with a sidecar written exactly as the builder writes it."""
    key = engine_key(sha256_file(onnx_file), 'fp16', '10.9.0.34', GPU, PROFILE)
    engine = tmp_path / 'tiny.fp16.engine'
    write_engine(engine, b'not a real engine', key, tiny_metadata(64, 128))
    return engine, key


def test_onnx_without_metadata(tmp_path):
    path = make_tiny_onnx(tmp_path / 'bare.onnx', metadata={})
    with pytest.raises(ModelLoadError, match=r"bare\.onnx.*'seg_kd_ros'"):
        create_backend(path)
    with pytest.raises(ModelLoadError, match=r"bare\.onnx.*'seg_kd_ros'"):
        inspect_onnx(path)
    with pytest.raises(KeyError, match=r'bare\.onnx'):
        read_onnx_metadata(path)


def test_onnx_with_bad_metadata_names_the_key(tmp_path):
    meta = tiny_metadata(64, 128)
    meta['temperature'] = -1
    path = make_tiny_onnx(tmp_path / 'badmeta.onnx', metadata=meta)
    with pytest.raises(ModelLoadError, match=r"badmeta\.onnx.*'temperature'"):
        inspect_onnx(path)


def test_corrupt_onnx(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'\x08\x01garbage, not a protobuf' * 10)
    with pytest.raises(ModelLoadError, match=r'corrupt\.onnx.*not a loadable ONNX'):
        create_backend(path)
    with pytest.raises(ModelLoadError, match=r'corrupt\.onnx.*not a loadable ONNX'):
        inspect_onnx(path)


def test_cached_engine_with_same_key_is_reused(cached_engine):
    engine, key = cached_engine
    assert cached_engine_usable(engine, key) is True
    stored_key, metadata = read_sidecar(engine)
    assert stored_key == key
    assert metadata.input_size == (64, 128)
    assert [p.name for p in engine.parent.iterdir() if p.name.endswith('.tmp')] == []


def test_stale_engine_is_an_error_unless_rebuild(cached_engine, tmp_path):
    engine, key = cached_engine
    changed = make_tiny_onnx(tmp_path / 'changed.onnx', seed=1)  # new weights: new hash
    new_key = dict(key, onnx_sha256=sha256_file(changed))
    with pytest.raises(StaleEngineError, match=r'tiny\.fp16\.engine.*stale.*onnx_sha256'):
        cached_engine_usable(engine, new_key)
    assert cached_engine_usable(engine, new_key, rebuild=True) is False
    other_precision = dict(key, precision='int8')
    with pytest.raises(StaleEngineError, match="precision: engine has 'fp16', wanted 'int8'"):
        cached_engine_usable(engine, other_precision)


def test_engine_bytes_checked_against_sidecar(cached_engine):
    engine, _ = cached_engine
    check_engine_bytes(engine, engine.read_bytes())
    engine.write_bytes(b'damaged engine')
    with pytest.raises(ModelLoadError, match=r'tiny\.fp16\.engine: engine bytes do not match'):
        check_engine_bytes(engine, engine.read_bytes())


def test_engine_without_or_with_corrupt_sidecar(cached_engine):
    engine, key = cached_engine
    sidecar_path(engine).write_text('{not json')
    with pytest.raises(ModelLoadError, match=r'tiny\.fp16\.engine\.json.*unreadable'):
        read_sidecar(engine)
    with pytest.raises(StaleEngineError, match='cannot be checked'):
        cached_engine_usable(engine, key)
    sidecar_path(engine).unlink()
    with pytest.raises(ModelLoadError, match='sidecar of engine .* not found'):
        read_sidecar(engine)


def test_sidecar_with_bad_metadata(cached_engine):
    engine, _ = cached_engine
    doc = json.loads(sidecar_path(engine).read_text())
    del doc['seg_kd_ros']['classes']
    sidecar_path(engine).write_text(json.dumps(doc))
    with pytest.raises(ModelLoadError, match=r"tiny\.fp16\.engine\.json.*'classes'"):
        read_sidecar(engine)


def test_engine_for_another_gpu_or_tensorrt_version(cached_engine):
    engine, key = cached_engine
    check_engine_compatible(engine, key, '10.9.0.34', GPU)  # the same setup: accepted
    with pytest.raises(ModelLoadError, match=r"gpu_name: engine has 'NVIDIA GeForce RTX 3090', "
                                             r"this machine has 'NVIDIA H100'"):
        check_engine_compatible(engine, key, '10.9.0.34',
                                {'gpu_name': 'NVIDIA H100', 'compute_capability': '9.0'})
    with pytest.raises(ModelLoadError, match=r"tensorrt_version: engine has '10\.9\.0\.34'.*"
                                             r"'10\.13\.0\.35'.*--rebuild"):
        check_engine_compatible(engine, key, '10.13.0.35', GPU)


def test_tensorrt_backend_refuses_cpu_and_missing_library(cached_engine):
    engine, _ = cached_engine
    with pytest.raises(ModelLoadError, match="needs device 'cuda'"):
        create_backend(engine, 'auto', 'cpu')
    if not HAVE_TENSORRT:
        with pytest.raises(ModelLoadError, match='TensorRT Python package'):
            create_backend(engine, 'tensorrt', 'cuda')


def test_optimisation_profile_static_and_dynamic():
    static = optimisation_profile((1, 64, 128, 3), (64, 128))  # uint8 NHWC camera bytes
    assert static == PROFILE
    dynamic = optimisation_profile((None, None, None, 3), (512, 1024), max_batch=4)
    assert dynamic == {'min': [1, 256, 512, 3], 'opt': [1, 512, 1024, 3],
                       'max': [4, 1024, 2048, 3]}


def test_build_engine_cli_errors(tmp_path, capsys):
    assert cli.main(['build-engine', '--onnx', str(tmp_path / 'missing.onnx')]) == 2
    assert 'missing.onnx: no such file' in capsys.readouterr().err
    bare = make_tiny_onnx(tmp_path / 'bare.onnx', metadata={})
    assert cli.main(['build-engine', '--onnx', str(bare)]) == 2
    assert "no 'seg_kd_ros' entry" in capsys.readouterr().err
    assert cli.main(['build-engine', '--onnx', str(bare), '--device', 'cpu']) == 2
    assert 'built on a GPU' in capsys.readouterr().err


def test_export_cli_rejects_bad_size(capsys):
    assert cli.main(['export', '--weights', 'w.safetensors', '--out', 'x.onnx',
                     '--input-size', '512-1024']) == 2
    assert "size must be HxW (e.g. 512x1024), got '512-1024'" in capsys.readouterr().err
