"""ONNX Runtime backend: CPU, or CUDA / TensorRT execution providers when this build has them."""

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from seg_kd_ros.backends import InferenceBackend, ModelLoadError, check_device, cuda_index
from seg_kd_ros.model_metadata import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAMES,
    MetadataError,
    ModelMetadata,
)

_log = logging.getLogger(__name__)
_INPUT, _OUTPUTS = INPUT_NAME, OUTPUT_NAMES
_TYPES = dict(zip((_INPUT, *_OUTPUTS), ('tensor(uint8)', 'tensor(uint8)', 'tensor(float)'),
                  strict=True))


def choose_providers(device: str, tensorrt_ep: bool = False, fp16: bool = False,
                     cache_dir: str | None = None) -> list:
    """Execution providers for `device`, from those this onnxruntime build offers.

    Args:
        device: 'cpu', 'cuda' or 'cuda:N'.
        tensorrt_ep: put TensorRT's execution provider before CUDA's (on a GPU only).
        fp16: let the TensorRT execution provider use fp16 kernels.
        cache_dir: where the TensorRT execution provider caches its engines.

    Raises:
        ModelLoadError: a GPU was asked for but this onnxruntime build cannot use one.
    """
    check_device(device)
    if device == 'cpu':
        return ['CPUExecutionProvider']
    available = ort.get_available_providers()
    index = cuda_index(device)
    providers: list = []
    if tensorrt_ep:
        if 'TensorrtExecutionProvider' not in available:
            raise ModelLoadError(f"TensorRT execution provider requested, but this onnxruntime "
                                 f"offers only {', '.join(available)}")
        trt = {'device_id': index, 'trt_fp16_enable': fp16}
        if cache_dir:
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache_dir)
        providers.append(('TensorrtExecutionProvider', trt))
    if 'CUDAExecutionProvider' not in available:
        raise ModelLoadError(f"device '{device}' needs onnxruntime's CUDA execution provider, but "
                             f"this onnxruntime offers only {', '.join(available)} (install "
                             f'onnxruntime-gpu, or use device cpu)')
    providers.append(('CUDAExecutionProvider', {'device_id': index}))
    providers.append('CPUExecutionProvider')
    return providers


def read_metadata(session: ort.InferenceSession, source: str) -> ModelMetadata:
    """The model-file metadata of an ONNX session (docs/model_file.md).

    Raises:
        ModelLoadError: no metadata entry, or one that does not validate.
    """
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ModelLoadError(f"{source}: no '{METADATA_KEY}' entry in the ONNX metadata (not a "
                             f'seg_kd_ros model file; export it with `seg-kd export`)')
    try:
        return ModelMetadata.from_json(props[METADATA_KEY], source)
    except MetadataError as exc:
        raise ModelLoadError(str(exc)) from None


def open_session(model_path: str | Path, device: str = 'cpu', threads: int = 0,
                 tensorrt_ep: bool = False, fp16: bool = False,
                 cache_dir: str | None = None) -> ort.InferenceSession:
    """Open any ONNX file in ONNX Runtime the way the node does (providers, threads, errors).

    The one place that creates sessions: the backend below, and training's ONNX teacher (a
    logits ONNX, not a model file) both come through here.

    Args:
        model_path: the `.onnx` file.
        device: 'cpu', 'cuda' or 'cuda:N'.
        threads: intra-op threads (0: onnxruntime's default, one per core).
        tensorrt_ep: on a GPU, try TensorRT's execution provider first.
        fp16: with `tensorrt_ep`, allow fp16 kernels.
        cache_dir: with `tensorrt_ep`, where engines are cached.

    Raises:
        ModelLoadError: missing, unreadable or corrupt file, or an unavailable device; one line
            naming the file.
    """
    source = str(model_path)
    check_device(device)
    try:
        with open(model_path, 'rb') as f:
            f.read(1)
    except OSError as exc:
        raise ModelLoadError(f'{source}: cannot read model file ({exc.strerror})') from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3  # errors only; ours are raised as exceptions
    try:
        providers = choose_providers(device, tensorrt_ep, fp16, cache_dir)
    except ModelLoadError as exc:
        raise ModelLoadError(f'{source}: {exc}') from None
    try:
        session = ort.InferenceSession(source, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f'{source}: not a loadable ONNX model ({reason})') from None
    if device != 'cpu' and 'CUDAExecutionProvider' not in session.get_providers():
        raise ModelLoadError(f"{source}: onnxruntime could not start CUDA on '{device}' "
                             f'(CUDA/cuDNN libraries missing?)')
    return session


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an `.onnx` model file with ONNX Runtime."""

    name = 'onnxruntime'

    def __init__(self, model_path: str | Path, device: str = 'cpu', threads: int = 0,
                 tensorrt_ep: bool = False, fp16: bool = False,
                 cache_dir: str | None = None) -> None:
        """Load the model; the arguments are `open_session`'s.

        Raises:
            ModelLoadError: missing, unreadable or corrupt file, missing or invalid metadata,
                inputs and outputs other than docs/model_file.md's, or an unavailable device.
        """
        self.model_path = Path(model_path)
        self.device = check_device(device)
        source = str(self.model_path)
        self._session = open_session(self.model_path, device, threads, tensorrt_ep, fp16,
                                     cache_dir)
        self.metadata = read_metadata(self._session, source)
        self._batch = self._check_signature(source)
        active = self._session.get_providers()
        self.precision = 'fp16' if fp16 and active[0] == 'TensorrtExecutionProvider' else 'fp32'
        _log.info('%s loaded with %s', source, ', '.join(active))

    def _check_signature(self, source: str) -> int | None:
        """Check inputs and outputs against the contract; return the static batch size if any."""
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if list(inputs) != [_INPUT] or not set(_OUTPUTS) <= set(outputs):
            raise ModelLoadError(f'{source}: model must take one input {_INPUT!r} and return '
                                 f'{_OUTPUTS}; it takes {list(inputs)} and returns '
                                 f'{list(outputs)}')
        for name, arg in [(_INPUT, inputs[_INPUT])] + [(o, outputs[o]) for o in _OUTPUTS]:
            if arg.type != _TYPES[name]:
                raise ModelLoadError(f"{source}: '{name}' must be {_TYPES[name]}, not {arg.type}")
        shape = inputs[_INPUT].shape
        if len(shape) != 4 or shape[3] != 3:
            raise ModelLoadError(f"{source}: input 'image' must be [N, H, W, 3], not {shape}")
        pairs = zip(shape[1:3], self.metadata.input_size, strict=True)
        for axis, (dim, size) in enumerate(pairs, start=1):
            if isinstance(dim, int) and dim != size:
                raise ModelLoadError(f"{source}: input 'image' is {shape} but the metadata's "
                                     f'input_size is {list(self.metadata.input_size)} '
                                     f'(axis {axis})')
        return shape[0] if isinstance(shape[0], int) else None

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._batch is None or self._batch == len(batch):
            labels, confidence = self._session.run(list(_OUTPUTS), {_INPUT: batch})
            return labels, confidence
        if self._batch != 1:
            raise ValueError(f'{self.model_path.name} takes batches of exactly {self._batch}, '
                             f'got {len(batch)}')
        results = [self._session.run(list(_OUTPUTS), {_INPUT: batch[i:i + 1]})
                   for i in range(len(batch))]
        return (np.concatenate([r[0] for r in results]),
                np.concatenate([r[1] for r in results]))

    def close(self) -> None:
        """Drop the session (frees its memory once no other reference holds it)."""
        self._session = None
