"""Atomic writes: the umask's mode (not mkstemp's 0600), all or nothing, no temporary left."""

import os
from pathlib import Path
import stat

import pytest

from seg_kd_ros.atomic_files import atomic_path, atomic_write, current_umask, default_file_mode
from seg_kd_ros.backends.tensorrt_build import write_engine


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o002, 0o077])
def test_written_file_gets_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    assert default_file_mode() == 0o666 & ~mask
    atomic_write(tmp_path / 'model.onnx', b'bytes')
    assert (tmp_path / 'model.onnx').read_bytes() == b'bytes'
    assert mode(tmp_path / 'model.onnx') == 0o666 & ~mask
    plain = tmp_path / 'plain.txt'
    plain.write_bytes(b'x')  # what an ordinary open gives
    assert mode(tmp_path / 'model.onnx') == mode(plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx', 'plain.txt']


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'sub' / 'model.onnx'
    atomic_write(target, b'old')
    with pytest.raises(RuntimeError, match='writer failed'), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == '.onnx' and tmp != target
        tmp.write_bytes(b'half')
        raise RuntimeError('writer failed')
    assert target.read_bytes() == b'old'
    assert [p.name for p in target.parent.iterdir()] == ['model.onnx']


def test_replaces_an_existing_file_whole(tmp_path, umask):
    umask(0o022)
    target = tmp_path / 'model.onnx'
    target.write_bytes(b'a much longer old content')
    target.chmod(0o600)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b'new')
    assert target.read_bytes() == b'new' and mode(target) == 0o644


def test_engine_and_sidecar_get_the_umask_mode(tmp_path, umask):
    umask(0o002)
    engine = tmp_path / 'm.fp16.engine'
    write_engine(engine, b'engine bytes', {'precision': 'fp16'}, {'format': 2})
    for path in (engine, Path(str(engine) + '.json')):
        assert mode(path) == 0o664, path
