"""TensorRT backend: runs an engine on an NVIDIA GPU, with pre-processing on the GPU.

Given an `.engine` file it loads the engine and its sidecar `<engine>.json` (metadata and build
key); an engine built for another GPU or TensorRT version is refused with a clear error. Given an
`.onnx` file it builds an engine on first start (logging that it does and how long it took) and
caches it beside the ONNX (`seg_kd_ros.backends.tensorrt_build`); a cached engine with another
key is an error unless `rebuild=True`.

Needs `tensorrt` (10.x) and NVIDIA's `cuda-python` bindings, neither CuPy nor torch: the model
file's input is the camera's bytes (uint8 `[N, H, W, 3]`, docs/model_file.md format 2), so frames
are copied as they are from pinned host memory to the GPU on one CUDA stream, the engine (whose
first layers normalise them) runs on the same stream, and labels and confidence come back through
pinned buffers.
"""

import logging
from pathlib import Path
import time

import numpy as np

from seg_kd_ros.backends import InferenceBackend, ModelLoadError, check_device, cuda_index
from seg_kd_ros.backends.cuda_runtime import (
    CudaError,
    DeviceBuffer,
    PinnedArray,
    Stream,
    device_count,
    gpu_identity,
    set_device,
)
from seg_kd_ros.backends.tensorrt_build import (
    build_engine,
    check_engine_bytes,
    import_tensorrt,
    key_differences,
    read_sidecar,
)
from seg_kd_ros.model_metadata import INPUT_NAME, OUTPUT_NAMES

_log = logging.getLogger(__name__)
_INPUT, _OUTPUTS = INPUT_NAME, OUTPUT_NAMES


def check_engine_compatible(engine_path: Path, key: dict, tensorrt_version: str,
                            gpu: dict) -> None:
    """Refuse an engine built by another TensorRT version or for another GPU.

    Raises:
        ModelLoadError: naming the engine, what it was built for and what this machine has.
    """
    here = dict(key, tensorrt_version=tensorrt_version, gpu_name=gpu['gpu_name'],
                compute_capability=gpu['compute_capability'])
    differences = key_differences(here, key)
    if differences:
        raise ModelLoadError(f'{engine_path}: engine was built for another setup '
                             f'({"; ".join(differences).replace("wanted", "this machine has")}); '
                             f'rebuild it here: seg-kd build-engine --onnx <model.onnx> '
                             f"--precision {key.get('precision')} --rebuild")


class TensorRTBackend(InferenceBackend):
    """Runs a TensorRT engine (`.engine`, or `.onnx` built into a cached engine)."""

    name = 'tensorrt'

    def __init__(self, model_path: str | Path, device: str = 'cuda', precision: str = 'fp16',
                 rebuild: bool = False, engine_path: str | Path | None = None,
                 workspace_gib: float = 4.0) -> None:
        """Load (or build and cache) the engine and allocate its buffers.

        Args:
            model_path: `.engine` (with its `.engine.json` sidecar) or `.onnx` file.
            device: 'cuda' or 'cuda:N'.
            precision: with an `.onnx`, the precision to build ('fp32' or 'fp16'; int8 needs
                calibration data: build it with `seg-kd build-engine`).
            rebuild: with an `.onnx`, replace a cached engine whose key is stale.
            engine_path: with an `.onnx`, where to cache the engine (default beside it).
            workspace_gib: with an `.onnx`, the builder's workspace limit.

        Raises:
            ModelLoadError: no tensorrt or cuda-python, a CPU device, a corrupt engine, a missing
                or bad sidecar, an engine for another GPU or TensorRT version, a stale cached
                engine.
        """
        self.model_path = Path(model_path)
        self.device = check_device(device)
        if device == 'cpu':
            raise ModelLoadError(f"{self.model_path}: the tensorrt backend needs device 'cuda' "
                                 f"or 'cuda:N', not 'cpu' (use backend onnxruntime on a CPU)")
        trt = import_tensorrt()
        self._check_gpu(cuda_index(device))
        set_device(cuda_index(device))
        engine_file = self._engine_file(precision, rebuild, engine_path, workspace_gib)
        self.engine_path = engine_file
        key, self.metadata = read_sidecar(engine_file)
        check_engine_compatible(engine_file, key, trt.__version__,
                                gpu_identity(cuda_index(device)))
        self.precision = key['precision']
        self._load(trt, engine_file)
        self._allocate()

    def _check_gpu(self, index: int) -> None:
        try:
            count = device_count()
        except CudaError as exc:
            raise ModelLoadError(f'{self.model_path}: no usable CUDA device ({exc})') from None
        if index >= count:
            raise ModelLoadError(f"{self.model_path}: device '{self.device}' asked for, but this "
                                 f'machine has {count} CUDA device(s)')

    def _engine_file(self, precision: str, rebuild: bool, engine_path, workspace_gib) -> Path:
        if self.model_path.suffix.lower() != '.onnx':
            return self.model_path
        if precision == 'int8':
            raise ModelLoadError(f'{self.model_path}: int8 engines need calibration data; build '
                                 f'one with seg-kd build-engine --precision int8 --calib-data DIR '
                                 f'and give the node the .engine file')
        started = time.monotonic()
        build = build_engine(self.model_path, engine_path, precision, rebuild=rebuild,
                             workspace_gib=workspace_gib,
                             device_index=cuda_index(self.device))
        if build.built:
            _log.warning('built TensorRT %s engine %s from %s in %.1f s (cached for the next '
                         'start)', precision, build.engine_path, self.model_path,
                         time.monotonic() - started)
        else:
            _log.info('using cached TensorRT engine %s', build.engine_path)
        return build.engine_path

    def _load(self, trt, engine_file: Path) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            blob = engine_file.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f'{engine_file}: cannot read engine ({exc.strerror})') from None
        check_engine_bytes(engine_file, blob)
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ModelLoadError(f'{engine_file}: TensorRT cannot deserialise this engine '
                                 f'(corrupt, or built by another TensorRT version)')
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names
                  if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [_INPUT] or not set(_OUTPUTS) <= set(names):
            raise ModelLoadError(f'{engine_file}: engine must take {_INPUT!r} and return '
                                 f'{_OUTPUTS}; it has inputs {inputs} and tensors {names}')
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n)))
                        for n in (_INPUT, *_OUTPUTS)}
        if self._dtypes[_INPUT] != np.uint8:
            raise ModelLoadError(f'{engine_file}: engine input is {self._dtypes[_INPUT]}, not the '
                                 f'uint8 camera bytes of model-file format 2; rebuild it from an '
                                 f'ONNX exported by this version of seg-kd export')
        max_shape = tuple(self._engine.get_tensor_profile_shape(_INPUT, 0)[2])
        height, width = self.metadata.input_size
        if max_shape[3] != 3 or max_shape[1] < height or max_shape[2] < width:
            raise ModelLoadError(f'{engine_file}: engine input {tuple(max_shape)} cannot take '
                                 f'the metadata input_size {height}x{width}')
        self._max_batch = int(max_shape[0])
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ModelLoadError(f'{engine_file}: cannot create an execution context (GPU out '
                                 f'of memory?)')

    def _allocate(self) -> None:
        """Device and pinned host buffers for the largest batch; one non-blocking stream."""
        n, (h, w) = self._max_batch, self.metadata.input_size
        self._stream = Stream()
        self._host_in = PinnedArray((n, h, w, 3), np.uint8)
        self._dev_in = DeviceBuffer(n * h * w * 3)
        self._dev_out = {o: DeviceBuffer(n * h * w * self._dtypes[o].itemsize) for o in _OUTPUTS}
        self._host_out = {o: PinnedArray((n, h, w), self._dtypes[o]) for o in _OUTPUTS}

    def _run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copy uint8 frames to the GPU as they are, run the engine, copy the outputs back."""
        labels, confidence = [], []
        for start in range(0, len(images), self._max_batch):
            chunk = images[start:start + self._max_batch]
            out = self._execute(chunk)
            labels.append(out[0])
            confidence.append(out[1])
        return np.concatenate(labels), np.concatenate(confidence)

    def _execute(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the engine on one batch of at most `_max_batch` frames."""
        n, (h, w) = len(chunk), self.metadata.input_size
        self._host_in.array[:n] = chunk
        self._stream.to_device(self._dev_in, self._host_in, chunk.nbytes)
        if not self._context.set_input_shape(_INPUT, (n, h, w, 3)):
            raise ValueError(f'{self.engine_path}: batch {n} is outside the engine profile')
        self._context.set_tensor_address(_INPUT, self._dev_in.ptr)
        for o in _OUTPUTS:
            self._context.set_tensor_address(o, self._dev_out[o].ptr)
        if not self._context.execute_async_v3(self._stream.ptr):
            raise RuntimeError(f'{self.engine_path}: TensorRT execution failed')
        for o in _OUTPUTS:
            self._stream.to_host(self._host_out[o], self._dev_out[o],
                                 n * h * w * self._dtypes[o].itemsize)
        self._stream.synchronize()
        return (self._host_out['labels'].array[:n].copy(),
                self._host_out['confidence'].array[:n].copy())

    def close(self) -> None:
        """Free the execution context, engine, buffers and stream."""
        self._context = self._engine = self._runtime = None
        buffers = [getattr(self, '_dev_in', None), getattr(self, '_host_in', None),
                   *getattr(self, '_dev_out', {}).values(),
                   *getattr(self, '_host_out', {}).values()]
        for buffer in buffers:
            if buffer is not None:
                buffer.free()
        self._dev_in = self._host_in = None
        self._dev_out, self._host_out = {}, {}
        if getattr(self, '_stream', None) is not None:
            self._stream.destroy()
            self._stream = None
