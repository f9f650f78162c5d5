"""Atomic file writes with the mode an ordinary `open` would give (0666 less the umask).

Every file that export, import-checkpoint and build-engine write (model files, engines, sidecars,
checkpoints, caches) goes through `atomic_path` or `atomic_write`: the content is written to a
unique temporary name beside the destination and renamed into place, so a reader never sees half a
file and a failed write leaves the previous file (or nothing) behind. `tempfile.mkstemp` creates
its file 0600; the temporary file is given the umask's mode before the rename, so a node running
as another user (e.g. in a container) can read the model file as it could any other.
"""

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import tempfile
import threading

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('Umask:'):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (briefly visible to other threads)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode `open(path, 'w')` gives a new file: 0666 less the umask."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, else it is removed.

    The temporary name keeps the destination's suffix (writers such as `onnx.save` or
    `torch.export.save` look at it). The parent folder is created if needed.

    Example:
        with atomic_path('model.onnx') as tmp:
            onnx.save(model, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.tmp' + path.suffix,
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a path to create a folder at; on success it replaces `path`, else nothing is left.

    The yielded path does not exist yet (the caller creates it, e.g. a bag writer that insists on
    a new folder) and has `path`'s name, inside a private staging folder beside `path`. On success
    it is renamed into place, a previous folder at `path` removed only then; on failure it is
    removed, and so are the parent folders this call created.
    """
    path = Path(path)
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent))
    try:
        yield staging / path.name
        if path.exists():
            os.replace(path, staging / (path.name + '.old'))
        os.replace(staging / path.name, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # innermost first; only if this call left them empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
