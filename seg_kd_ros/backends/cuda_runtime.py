"""The few CUDA runtime calls the TensorRT backend and engine builder need (no CuPy, no torch).

Through NVIDIA's `cuda-python` bindings (`cuda.bindings.runtime`, the binding TensorRT's own
samples use): device count and identity, device and pinned host buffers, one stream, asynchronous
copies. The model file's input is uint8 camera bytes (docs/model_file.md, format 2), so nothing
here computes: frames are copied to the GPU as they are and the engine does the rest.
"""

import ctypes

import numpy as np

from seg_kd_ros.backends import ModelLoadError

INSTALL = 'pip install "cuda-python>=12.6,<13"'


class CudaError(ModelLoadError):
    """A CUDA runtime call that failed; the message names the call and CUDA's reason."""


def import_cudart():
    """The `cuda-python` runtime module, or `ModelLoadError` saying how to get it."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6
        except ImportError as exc:
            raise ModelLoadError(f'the tensorrt backend needs the CUDA runtime bindings, which '
                                 f'are not importable ({exc}); {INSTALL}') from None
    return runtime


def call(name: str, *args):
    """Call `cudart.<name>(*args)`; return its value(s), raise `CudaError` on an error code."""
    cudart = import_cudart()
    err, *values = getattr(cudart, name)(*args)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        text = text.decode() if isinstance(text, bytes) else str(text)
        raise CudaError(f'CUDA {name} failed: {text}')
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_count() -> int:
    """Number of CUDA devices (`CudaError` when there is no usable driver)."""
    return int(call('cudaGetDeviceCount'))


def set_device(index: int) -> None:
    """Make device `index` current for this thread (TensorRT builds and runs there)."""
    call('cudaSetDevice', int(index))


def gpu_identity(device_index: int = 0) -> dict:
    """Name and compute capability of a CUDA device (`{'gpu_name', 'compute_capability'}`)."""
    props = call('cudaGetDeviceProperties', int(device_index))
    name = props.name
    name = name.split(b'\0', 1)[0].decode() if isinstance(name, bytes) else str(name)
    return {'gpu_name': name, 'compute_capability': f'{props.major}.{props.minor}'}


class DeviceBuffer:
    """`nbytes` of device memory."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(call('cudaMalloc', self.nbytes))

    def free(self) -> None:
        """Release the memory (idempotent)."""
        if self.ptr:
            call('cudaFree', self.ptr)
            self.ptr = 0


class PinnedArray:
    """A numpy array in page-locked host memory (fast, asynchronous copies to and from the GPU)."""

    def __init__(self, shape: tuple, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        self.ptr = int(call('cudaMallocHost', nbytes))
        raw = (ctypes.c_uint8 * nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape)

    def free(self) -> None:
        """Release the memory (idempotent); the array must not be used afterwards."""
        if self.ptr:
            self.array = None
            call('cudaFreeHost', self.ptr)
            self.ptr = 0


class Stream:
    """A non-blocking CUDA stream with asynchronous host <-> device copies."""

    def __init__(self):
        cudart = import_cudart()
        self._cudart = cudart
        self.handle = call('cudaStreamCreateWithFlags', cudart.cudaStreamNonBlocking)

    @property
    def ptr(self) -> int:
        """The raw `cudaStream_t` value, as TensorRT's `execute_async_v3` takes it."""
        return int(self.handle)

    def to_device(self, device: DeviceBuffer, host: PinnedArray, nbytes: int) -> None:
        """Queue a copy of the first `nbytes` of `host` to `device`."""
        call('cudaMemcpyAsync', device.ptr, host.ptr, int(nbytes),
             self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle)

    def to_host(self, host: PinnedArray, device: DeviceBuffer, nbytes: int) -> None:
        """Queue a copy of the first `nbytes` of `device` to `host`."""
        call('cudaMemcpyAsync', host.ptr, device.ptr, int(nbytes),
             self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle)

    def synchronize(self) -> None:
        """Wait until everything queued on the stream has run."""
        call('cudaStreamSynchronize', self.handle)

    def destroy(self) -> None:
        """Release the stream (idempotent)."""
        if self.handle is not None:
            call('cudaStreamDestroy', self.handle)
            self.handle = None
