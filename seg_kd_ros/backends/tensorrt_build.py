"""Build TensorRT engines from exported ONNX files, and cache them safely.

This module is the one engine builder of the project: the node calls it when it is given an ONNX
file and `backend: tensorrt`, and `seg-kd build-engine` calls it too (training may import this
small runtime module; the node never imports training code).

Written against the TensorRT 10 Python API (`build_serialized_network`, named I/O tensors).
TensorRT 11 removed the weak-typing precision flags (FP16, INT8) and the INT8 calibrator; with
TensorRT >= 11 only `fp32` builds here (use ModelOpt AutoCast / Q/DQ ONNX files for lower
precision). INT8 by calibrator ("implicit quantisation") is deprecated since TensorRT 10.1.

The engine cache: an engine file `X.engine` has a sidecar `X.engine.json` holding the model's
metadata object and the build key (ONNX sha256, TensorRT version, GPU name and compute
capability, precision, optimisation profile). A cached engine is reused only when its key equals
the key of the requested build; a different key is an error (`StaleEngineError`) unless a rebuild
is asked for. Engine and sidecar are written to temporary files and renamed into place.
"""

from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import re
import time

from seg_kd_ros.atomic_files import atomic_write
from seg_kd_ros.backends import ModelLoadError
from seg_kd_ros.backends.cuda_runtime import gpu_identity, set_device
from seg_kd_ros.model_metadata import METADATA_KEY, ModelMetadata

LOG = logging.getLogger(__name__)
PRECISIONS = ('fp32', 'fp16', 'int8')
SIDECAR_FORMAT = 1
KEY_FIELDS = ('onnx_sha256', 'tensorrt_version', 'gpu_name', 'compute_capability', 'precision',
              'profile')


class StaleEngineError(ModelLoadError):
    """A cached engine whose build key differs from the one requested."""


def import_tensorrt():
    """Import `tensorrt`, or raise `ModelLoadError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise ModelLoadError(
            f'the tensorrt backend needs the TensorRT Python package, which is not importable '
            f'({exc}); install it on a machine with an NVIDIA GPU (pip install "tensorrt-cu12>=10,'
            f'<11"), or use backend onnxruntime') from None
    return tensorrt


def tensorrt_major(version: str) -> int:
    """Major version number of a TensorRT version string."""
    return int(version.split('.')[0])


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def engine_key(onnx_sha256: str, precision: str, tensorrt_version: str, gpu: dict,
               profile: dict) -> dict:
    """The build key that decides whether a cached engine may be reused."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    return {'onnx_sha256': onnx_sha256, 'tensorrt_version': tensorrt_version,
            'gpu_name': gpu['gpu_name'], 'compute_capability': gpu['compute_capability'],
            'precision': precision, 'profile': profile}


def key_differences(expected: dict, found: dict) -> list[str]:
    """Human-readable differences between two build keys (empty when they match)."""
    return [f'{k}: engine has {found.get(k)!r}, wanted {expected.get(k)!r}'
            for k in KEY_FIELDS if found.get(k) != expected.get(k)]


def sidecar_path(engine_path: str | Path) -> Path:
    """`X.engine` -> `X.engine.json`."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + '.json')


def read_sidecar(engine_path: str | Path) -> tuple[dict, ModelMetadata]:
    """Read and validate an engine's sidecar; return `(key, metadata)`.

    Raises:
        ModelLoadError: a missing, unreadable or malformed sidecar, naming the file.
    """
    path = sidecar_path(engine_path)
    try:
        doc = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ModelLoadError(f'{path}: sidecar of engine {engine_path} not found; an engine '
                             f'needs its metadata file (rebuild it with seg-kd build-engine)'
                             ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f'{path}: unreadable engine sidecar ({exc})') from None
    if not isinstance(doc, dict) or not isinstance(doc.get('key'), dict):
        raise ModelLoadError(f"{path}: engine sidecar has no 'key' object")
    missing = [k for k in KEY_FIELDS if k not in doc['key']]
    if missing:
        raise ModelLoadError(f"{path}: engine sidecar key lacks {', '.join(missing)}")
    try:
        metadata = ModelMetadata.from_dict(doc.get(METADATA_KEY), source=str(path))
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    return doc['key'], metadata


def check_engine_bytes(engine_path: str | Path, blob: bytes) -> None:
    """Check an engine's bytes against the sha256 its sidecar recorded.

    Raises:
        ModelLoadError: the engine was replaced or damaged after its sidecar was written.
    """
    path = sidecar_path(engine_path)
    try:
        expected = json.loads(path.read_text(encoding='utf-8')).get('engine_sha256')
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f'{path}: unreadable engine sidecar ({exc})') from None
    if expected != hashlib.sha256(blob).hexdigest():
        raise ModelLoadError(f'{engine_path}: engine bytes do not match the sha256 in {path.name} '
                             f'(damaged or replaced after the build); rebuild it')


def write_engine(engine_path: str | Path, engine_bytes: bytes, key: dict, metadata: dict,
                 extra: dict | None = None) -> None:
    """Write an engine and its sidecar atomically (the sidecar last: it validates the pair)."""
    sidecar = {'format': SIDECAR_FORMAT, 'key': key, METADATA_KEY: metadata,
               'engine_sha256': hashlib.sha256(engine_bytes).hexdigest(), **(extra or {})}
    sidecar_path(engine_path).unlink(missing_ok=True)  # never leave a new engine with an old key
    atomic_write(engine_path, engine_bytes)
    atomic_write(sidecar_path(engine_path), json.dumps(sidecar, indent=2).encode())


def cached_engine_usable(engine_path: str | Path, key: dict, rebuild: bool = False) -> bool:
    """Decide whether `engine_path` may be reused for a build with `key`.

    Returns:
        True when an engine with the same key exists; False when there is none, or when it is
        stale and `rebuild` is set (it will be replaced).

    Raises:
        StaleEngineError: an engine exists with another key (or an unreadable sidecar) and
            `rebuild` is not set; the message lists what differs.
    """
    engine_path = Path(engine_path)
    if not engine_path.exists():
        return False
    try:
        found, _ = read_sidecar(engine_path)
    except ModelLoadError as exc:
        if rebuild:
            return False
        raise StaleEngineError(f'{engine_path}: cached engine cannot be checked ({exc}); '
                               f'rebuild it explicitly (--rebuild / rebuild=True)') from None
    differences = key_differences(key, found)
    if not differences:
        return True
    if rebuild:
        LOG.warning('rebuilding stale engine %s (%s)', engine_path, '; '.join(differences))
        return False
    raise StaleEngineError(f'{engine_path}: cached engine is stale ({"; ".join(differences)}); '
                           f'it is never rebuilt silently: rebuild it explicitly (seg-kd '
                           f'build-engine --rebuild, or rebuild=True) or delete it')


def default_engine_path(onnx_path: str | Path, precision: str) -> Path:
    """`model.onnx` -> `model.<precision>.engine` beside it, or in the user cache if read-only."""
    onnx_path = Path(onnx_path)
    beside = onnx_path.with_name(f'{onnx_path.stem}.{precision}.engine')
    if os.access(onnx_path.parent, os.W_OK):
        return beside
    cache = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'seg_kd_ros'
    return cache / 'engines' / beside.name


def inspect_onnx(onnx_path: str | Path) -> tuple[dict, tuple]:
    """The metadata object (validated) and input shape (None for a dynamic axis) of an ONNX file.

    Raises:
        ModelLoadError: a corrupt file, or one without valid `seg_kd_ros` metadata.
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    except Exception as exc:  # ORT raises its own exception types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f'{onnx_path}: not a loadable ONNX model ({reason})') from None
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise ModelLoadError(f'{onnx_path}: no {METADATA_KEY!r} entry in the ONNX metadata; '
                             f'export the model with seg-kd export')
    try:
        ModelMetadata.from_json(text, source=str(onnx_path))
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != 'tensor(uint8)':
        raise ModelLoadError(f'{onnx_path}: expected one uint8 input [N, H, W, 3] (model-file '
                             f'format 2), got {[(i.name, i.type, i.shape) for i in inputs]}')
    shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
    return json.loads(text), shape


@dataclass
class EngineBuild:
    """Where an engine is, its build key, and whether this call built it."""

    engine_path: Path
    key: dict
    built: bool
    seconds: float


class _Logger:
    """Forwards TensorRT's log to `logging` (created lazily: it subclasses `trt.ILogger`)."""

    @staticmethod
    def create(trt):
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)

            def log(self, severity, msg):
                sev = trt.ILogger.Severity
                level = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR,
                         sev.WARNING: logging.WARNING}.get(severity, logging.DEBUG)
                LOG.log(level, 'TensorRT: %s', msg)

        return Logger()


def optimisation_profile(input_shape: tuple, input_size: tuple[int, int],
                         max_batch: int = 1) -> dict:
    """Min/opt/max shapes of the input for an explicit optimisation profile.

    Args:
        input_shape: the ONNX input shape, None for a dynamic axis.
        input_size: the metadata's `(height, width)`.
        max_batch: largest batch when the batch axis is dynamic.


    The input is `[N, H, W, 3]` (uint8 camera bytes). A static input gets min = opt = max = its
    shape. A dynamic axis gets: batch 1..`max_batch` (opt 1); height and width from half to twice
    `input_size` (opt `input_size`).
    """
    height, width = int(input_size[0]), int(input_size[1])
    defaults = [(1, 1, max_batch), (max(height // 2, 32), height, height * 2),
                (max(width // 2, 32), width, width * 2), (3, 3, 3)]
    lo, opt, hi = [], [], []
    for dim, (d_min, d_opt, d_max) in zip(input_shape, defaults, strict=True):
        if dim is not None:
            d_min = d_opt = d_max = int(dim)
        lo.append(d_min)
        opt.append(d_opt)
        hi.append(d_max)
    return {'min': lo, 'opt': opt, 'max': hi}


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None,
                 precision: str = 'fp16', *, rebuild: bool = False, calibrator=None,
                 timing_cache: str | Path | None = None, workspace_gib: float = 4.0,
                 max_batch: int = 1, device_index: int = 0) -> EngineBuild:
    """Build (or reuse) the engine of an ONNX file for this GPU and TensorRT version.

    Args:
        onnx_path: an ONNX file written by `seg-kd export` (with its metadata).
        engine_path: destination; default `default_engine_path(onnx_path, precision)`.
        precision: 'fp32', 'fp16' or 'int8' (int8 needs `calibrator`, an
            `IInt8Calibrator`, which may just replay a calibration cache).
        rebuild: replace a cached engine whose key differs (otherwise that is an error).
        calibrator: INT8 calibrator (TensorRT 10 only; deprecated there since 10.1).
        timing_cache: timing-cache file, read if present and rewritten after the build;
            default `timing-trt<TensorRT version>-<GPU name>.cache` beside the engine.
        workspace_gib: builder workspace memory limit.
        max_batch: largest batch of the optimisation profile when the batch axis is dynamic.
        device_index: CUDA device to build for.

    Raises:
        ModelLoadError: no tensorrt, a corrupt ONNX or one without metadata, a parse or build
            failure, or a precision this TensorRT cannot build.
        StaleEngineError: a cached engine with another key, and `rebuild` not set.
    """
    onnx_path = Path(onnx_path)
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if not onnx_path.is_file():
        raise ModelLoadError(f'{onnx_path}: ONNX file does not exist')
    metadata, input_shape = inspect_onnx(onnx_path)
    trt = import_tensorrt()
    if precision != 'fp32' and tensorrt_major(trt.__version__) >= 11:
        raise ModelLoadError(f'{onnx_path}: TensorRT {trt.__version__} removed the {precision} '
                             f'builder flag (strong typing only); build fp32, or quantise the '
                             f'ONNX with explicit Q/DQ / ModelOpt AutoCast first')
    if precision == 'int8' and calibrator is None:
        raise ModelLoadError(f'{onnx_path}: int8 needs a calibrator (seg-kd build-engine '
                             f'--calib-data DIR, or a calibration cache)')
    engine_path = Path(engine_path) if engine_path else default_engine_path(onnx_path, precision)
    started = time.monotonic()
    profile_shapes = optimisation_profile(input_shape, metadata['input_size'], max_batch)
    set_device(device_index)  # TensorRT builds on the current device
    gpu = gpu_identity(device_index)
    key = engine_key(sha256_file(onnx_path), precision, trt.__version__, gpu, profile_shapes)
    if cached_engine_usable(engine_path, key, rebuild):
        LOG.info('reusing cached engine %s', engine_path)
        return EngineBuild(engine_path, key, built=False, seconds=time.monotonic() - started)

    logger = _Logger.create(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(parser.get_error(i).desc() for i in range(parser.num_errors))
        raise ModelLoadError(f'{onnx_path}: TensorRT cannot parse this ONNX ({errors})')
    image = network.get_input(0)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(image.name, *(tuple(profile_shapes[k]) for k in ('min', 'opt', 'max')))
    config.add_optimization_profile(profile)
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 falls back to fp16, not fp32
    if precision == 'int8':
        LOG.warning('INT8 by calibration (implicit quantisation) is deprecated since TensorRT '
                    '10.1 and removed in 11; explicit Q/DQ quantisation is the supported path')
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    gpu_slug = re.sub(r'[^A-Za-z0-9]+', '-', gpu['gpu_name']).strip('-')
    cache_file = Path(timing_cache) if timing_cache else engine_path.with_name(
        f'timing-trt{trt.__version__}-{gpu_slug}.cache')
    blob = cache_file.read_bytes() if cache_file.is_file() else b''
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, False)  # False: refuse a cache from another device

    LOG.warning('building %s TensorRT engine %s from %s on %s (this can take minutes)',
                precision, engine_path, onnx_path, gpu['gpu_name'])
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelLoadError(f'{onnx_path}: TensorRT failed to build a {precision} engine '
                             f'(see the TensorRT errors logged above)')
    seconds = time.monotonic() - started
    atomic_write(cache_file, bytes(config.get_timing_cache().serialize()))
    write_engine(engine_path, bytes(serialized), key, metadata,
                 extra={'onnx_path': str(onnx_path), 'build_seconds': round(seconds, 1)})
    LOG.info('built %s in %.1f s', engine_path, seconds)
    return EngineBuild(engine_path, key, built=True, seconds=seconds)
