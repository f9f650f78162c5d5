"""Inference backends behind one small interface, chosen by `create_backend`.

Each backend lives in its own module, imported only when chosen, so the node needs neither torch
nor tensorrt unless it runs those. A backend module defines one `InferenceBackend` subclass whose
constructor is `(model_path: pathlib.Path, device: str, **options)`:

| backend       | module                                        | class                 | model file |
|---------------|-----------------------------------------------|-----------------------|------------|
| `onnxruntime` | `seg_kd_ros.backends.onnxruntime_backend`     | `OnnxRuntimeBackend`  | `.onnx`    |
| `torch`       | `seg_kd_ros.backends.torch_backend`           | `TorchBackend`        | `.pt2`     |
| `tensorrt`    | `seg_kd_ros.backends.tensorrt_backend`        | `TensorRTBackend`     | `.engine` (or `.onnx`, built and cached) |
"""  # noqa: E501

import abc
import importlib
from pathlib import Path
import re

import numpy as np

from seg_kd_ros.model_metadata import ModelMetadata

BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'torch')
_MODULES = {
    'onnxruntime': ('seg_kd_ros.backends.onnxruntime_backend', 'OnnxRuntimeBackend'),
    'torch': ('seg_kd_ros.backends.torch_backend', 'TorchBackend'),
    'tensorrt': ('seg_kd_ros.backends.tensorrt_backend', 'TensorRTBackend'),
}
_AUTO = {'.onnx': 'onnxruntime', '.pt2': 'torch', '.engine': 'tensorrt'}
_FILE_TYPES = {'onnxruntime': ('.onnx',), 'torch': ('.pt2',), 'tensorrt': ('.engine', '.onnx')}
DEVICE_PATTERN = re.compile(r'^(cpu|cuda(:\d+)?)$')
"""The device names every backend, the node and `seg-kd` accept: cpu, cuda, cuda:N."""


class ModelLoadError(RuntimeError):
    """A model file that cannot be used; the message names the file and what is wrong."""


def check_device(device: str) -> str:
    """Validate a device string: 'cpu', 'cuda' or 'cuda:N'.

    Raises:
        ValueError: any other value.
    """
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def cuda_index(device: str) -> int:
    """The GPU index of 'cuda' (0) or 'cuda:N' (N)."""
    return int(device.split(':')[1]) if ':' in device else 0


class InferenceBackend(abc.ABC):
    """Runs a segmentation model: uint8 RGB images in, labels and confidence out.

    The model file's graph takes the camera's bytes as they are (docs/model_file.md, format 2):
    normalisation happens inside it, so a backend only copies uint8 frames to its device.

    Attributes:
        name: 'onnxruntime', 'torch' or 'tensorrt'.
        device: 'cpu', 'cuda' or 'cuda:N'.
        precision: 'fp32', 'fp16' or 'int8'.
        metadata: the model's metadata (classes, palette, normalisation, input size, ...).
        model_path: the model file.
    """

    name: str = ''
    device: str = 'cpu'
    precision: str = 'fp32'
    metadata: ModelMetadata
    model_path: Path

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment a batch of images.

        Args:
            images: uint8 RGB `[N, H, W, 3]` with (H, W) = `metadata.input_size`.

        Returns:
            labels uint8 `[N, H, W]` and confidence float32 `[N, H, W]` in [0, 1].

        Raises:
            ValueError: images of the wrong dtype, layout or size.
        """
        self.check_images(images)
        labels, confidence = self._run(images)
        expected = images.shape[:3]
        if labels.shape != expected or confidence.shape != expected:
            raise RuntimeError(f'{self.model_path}: model returned labels {labels.shape} and '
                               f'confidence {confidence.shape}, expected {expected}')
        return (labels.astype(np.uint8, copy=False),
                confidence.astype(np.float32, copy=False))

    def check_images(self, images: np.ndarray) -> None:
        """Raise ValueError unless `images` is uint8 `[N, H, W, 3]` at the model's input size."""
        height, width = self.metadata.input_size
        if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4
                or images.shape[3] != 3 or images.shape[0] < 1):
            got = (images.shape, images.dtype) if isinstance(images, np.ndarray) else type(images)
            raise ValueError(f'infer needs uint8 RGB [N, H, W, 3], got {got}')
        if images.shape[1:3] != (height, width):
            raise ValueError(f'images are {images.shape[2]}x{images.shape[1]} (WxH), the model '
                             f'{self.model_path.name} expects {width}x{height}; resize first')

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the model file on checked uint8 `[N, H, W, 3]` frames; return labels, confidence."""

    def close(self) -> None:  # noqa: B027 (optional hook, nothing to release by default)
        """Release the model and its device memory."""

    def __enter__(self) -> 'InferenceBackend':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.model_path.name}, device={self.device}, '
                f'precision={self.precision})')


def resolve_backend(model_path: str | Path, backend: str = 'auto') -> str:
    """The backend that `create_backend` would use for this file (without loading anything).

    Raises:
        ValueError: an unknown backend name.
        ModelLoadError: a file type the backend cannot read, or 'auto' with an unknown type.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    suffix = Path(model_path).suffix.lower()
    if backend == 'auto':
        if suffix not in _AUTO:
            raise ModelLoadError(f"{model_path}: unknown model file type '{suffix}' (expected "
                                 f"{', '.join(_AUTO)})")
        return _AUTO[suffix]
    if suffix not in _FILE_TYPES[backend]:
        raise ModelLoadError(f"{model_path}: backend '{backend}' reads "
                             f"{' or '.join(_FILE_TYPES[backend])} files, not '{suffix}'")
    return backend


def create_backend(model_path: str | Path, backend: str = 'auto', device: str = 'cpu',
                   **options) -> InferenceBackend:
    """Load a model file with the chosen backend.

    Args:
        model_path: `.onnx`, `.engine` or `.pt2` file.
        backend: 'auto' (by file type: .onnx -> onnxruntime, .engine -> tensorrt,
            .pt2 -> torch), 'onnxruntime', 'torch' or 'tensorrt'.
        device: 'cpu', 'cuda' or 'cuda:N'.
        **options: backend-specific settings, passed to the backend's constructor.

    Raises:
        ValueError: an unknown backend or device name.
        ModelLoadError: the file is missing, unreadable, corrupt or lacks metadata, or the backend
            cannot run here (its library is missing or the device is unavailable).
    """
    check_device(device)
    name = resolve_backend(model_path, backend)
    path = Path(model_path)
    if not path.is_file():
        what = 'is a directory, not a model file' if path.is_dir() else 'does not exist'
        raise ModelLoadError(f'{path}: model file {what}')
    module_name, class_name = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"{path}: backend '{name}' is not available here ({exc})") from None
    return getattr(module, class_name)(path, device, **options)


__all__ = ['BACKENDS', 'DEVICE_PATTERN', 'InferenceBackend', 'ModelLoadError', 'check_device',
           'create_backend', 'cuda_index', 'resolve_backend']
