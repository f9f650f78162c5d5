"""TensorRT backend: runs an engine on an NVIDIA GPU, with pre-processing on the GPU.

Given an `.engine` file it loads the engine and its sidecar `<engine>.json` (metadata and build
key); an engine built for another GPU or TensorRT version is refused with a clear error. Given an
`.onnx` file it builds an engine on first start (logging that it does and how long it took) and
caches it beside the ONNX (`seg_kd_ros.backends.tensorrt_build`); a cached engine with another
key is an error unless `rebuild=True`.

Needs `tensorrt` (10.x) and CuPy (`cupy-cuda12x`), not torch: uint8 frames go from pinned host
memory to the GPU on one CUDA stream, are normalised and transposed to NCHW there, the engine
runs on the same stream, and labels and confidence come back through pinned buffers.
"""

import logging
from pathlib import Path
import time

import numpy as np

from seg_kd_ros.backends import InferenceBackend, ModelLoadError, check_device, cuda_index
from seg_kd_ros.backends.tensorrt_build import (
    build_engine,
    check_engine_bytes,
    gpu_identity,
    import_cupy,
    import_tensorrt,
    key_differences,
    read_sidecar,
)

_log = logging.getLogger(__name__)
_INPUT, _OUTPUTS = 'image', ('labels', 'confidence')


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
            ModelLoadError: no tensorrt or CuPy, a CPU device, a corrupt engine, a missing or bad
                sidecar, an engine for another GPU or TensorRT version, a stale cached engine.
        """
        self.model_path = Path(model_path)
        self.device = check_device(device)
        if device == 'cpu':
            raise ModelLoadError(f"{self.model_path}: the tensorrt backend needs device 'cuda' "
                                 f"or 'cuda:N', not 'cpu' (use backend onnxruntime on a CPU)")
        trt = import_tensorrt()
        cp = import_cupy()
        self._cp = cp
        self._device = cp.cuda.Device(self._check_gpu(cp, cuda_index(device)))
        with self._device:
            engine_file = self._engine_file(precision, rebuild, engine_path, workspace_gib)
            self.engine_path = engine_file
            key, self.metadata = read_sidecar(engine_file)
            check_engine_compatible(engine_file, key, trt.__version__,
                                    gpu_identity(cuda_index(device)))
            self.precision = key['precision']
            self._load(trt, engine_file)
            self._allocate(cp)

    def _check_gpu(self, cp, index: int) -> int:
        try:
            count = cp.cuda.runtime.getDeviceCount()
        except cp.cuda.runtime.CUDARuntimeError as exc:
            raise ModelLoadError(f'{self.model_path}: no usable CUDA device ({exc})') from None
        if index >= count:
            raise ModelLoadError(f"{self.model_path}: device '{self.device}' asked for, but this "
                                 f'machine has {count} CUDA device(s)')
        return index

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
        max_shape = tuple(self._engine.get_tensor_profile_shape(_INPUT, 0)[2])
        height, width = self.metadata.input_size
        if max_shape[1] != 3 or max_shape[2] < height or max_shape[3] < width:
            raise ModelLoadError(f'{engine_file}: engine input {tuple(max_shape)} cannot take '
                                 f'the metadata input_size {height}x{width}')
        self._max_batch = int(max_shape[0])
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ModelLoadError(f'{engine_file}: cannot create an execution context (GPU out '
                                 f'of memory?)')

    def _allocate(self, cp) -> None:
        """Device and pinned host buffers for the largest batch; one non-blocking stream."""
        import cupyx

        n, (h, w) = self._max_batch, self.metadata.input_size
        self._stream = cp.cuda.Stream(non_blocking=True)
        self._host_in = cupyx.empty_pinned((n, h, w, 3), np.uint8)
        self._dev_u8 = cp.empty((n, h, w, 3), cp.uint8)
        self._dev_in = cp.empty((n, 3, h, w), self._dtypes[_INPUT])
        self._dev_out = {o: cp.empty((n, h, w), self._dtypes[o]) for o in _OUTPUTS}
        self._host_out = {o: cupyx.empty_pinned((n, h, w), self._dtypes[o]) for o in _OUTPUTS}
        mean = np.asarray(self.metadata.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.metadata.std, np.float32).reshape(1, 3, 1, 1)
        self._scale = cp.asarray(1.0 / (255.0 * std))  # x * scale + shift == (x/255 - m) / s
        self._shift = cp.asarray(-mean / std)

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment uint8 RGB `[N, H, W, 3]` frames; pre-processing runs on the GPU."""
        self.check_images(images)
        labels, confidence = [], []
        for start in range(0, len(images), self._max_batch):
            chunk = images[start:start + self._max_batch]
            n = len(chunk)
            self._host_in[:n] = chunk
            with self._device, self._stream:
                self._dev_u8[:n].set(self._host_in[:n], stream=self._stream)
                nchw = self._dev_u8[:n].transpose(0, 3, 1, 2).astype(self._cp.float32)
                self._dev_in[:n] = nchw * self._scale + self._shift
            out = self._execute(n)
            labels.append(out[0])
            confidence.append(out[1])
        return (np.concatenate(labels).astype(np.uint8, copy=False),
                np.concatenate(confidence).astype(np.float32, copy=False))

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run on already normalised float32 NCHW input (the base class's path)."""
        labels, confidence = [], []
        for start in range(0, len(batch), self._max_batch):
            chunk = np.ascontiguousarray(batch[start:start + self._max_batch])
            n = len(chunk)
            with self._device, self._stream:
                self._dev_in[:n].set(chunk.astype(self._dtypes[_INPUT]), stream=self._stream)
            out = self._execute(n)
            labels.append(out[0])
            confidence.append(out[1])
        return np.concatenate(labels), np.concatenate(confidence)

    def _execute(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Run the engine on the first `n` items of the device input; copy the outputs back."""
        h, w = self.metadata.input_size
        with self._device:
            if not self._context.set_input_shape(_INPUT, (n, 3, h, w)):
                raise ValueError(f'{self.engine_path}: batch {n} is outside the engine profile')
            self._context.set_tensor_address(_INPUT, self._dev_in.data.ptr)
            for o in _OUTPUTS:
                self._context.set_tensor_address(o, self._dev_out[o].data.ptr)
            if not self._context.execute_async_v3(self._stream.ptr):
                raise RuntimeError(f'{self.engine_path}: TensorRT execution failed')
            for o in _OUTPUTS:
                self._dev_out[o][:n].get(stream=self._stream, out=self._host_out[o][:n],
                                         blocking=False)
            self._stream.synchronize()
        return self._host_out['labels'][:n].copy(), self._host_out['confidence'][:n].copy()

    def close(self) -> None:
        """Free the execution context, engine and buffers."""
        for attr in ('_context', '_engine', '_runtime', '_dev_in', '_dev_u8', '_dev_out',
                     '_host_in', '_host_out'):
            setattr(self, attr, None)
