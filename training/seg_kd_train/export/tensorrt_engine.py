"""TensorRT engines from exported ONNX files: INT8 calibration data and the build call.

The engine builder itself (cache key, timing cache, optimisation profile, atomic writes) lives in
the runtime package, `seg_kd_ros.backends.tensorrt_build`, so that the node can build an engine
without training code; this module adds what only training has: a dataset split to calibrate
INT8 with. INT8 through `IInt8EntropyCalibrator2` is TensorRT's implicit quantisation, deprecated
since TensorRT 10.1 and removed in 11 (explicit Q/DQ quantisation replaces it).
"""

import logging
from pathlib import Path

import numpy as np

from seg_kd_ros.atomic_files import atomic_write
from seg_kd_ros.backends.cuda_runtime import DeviceBuffer, PinnedArray, Stream, set_device
from seg_kd_ros.backends.tensorrt_build import (
    EngineBuild,
    build_engine,
    import_tensorrt,
    inspect_onnx,
)
from seg_kd_train.data.factory import build_dataset
from seg_kd_train.export.samples import network_batches

LOG = logging.getLogger(__name__)


def make_entropy_calibrator(batches, batch_size: int, cache_path: str | Path,
                            input_shape: tuple[int, int, int]):
    """Build an `IInt8EntropyCalibrator2` over uint8 camera-byte batches (model-file format 2).

    Args:
        batches: iterable of uint8 `[batch_size, H, W, 3]` arrays (a smaller last batch is
            dropped: TensorRT wants whole batches), or None to replay `cache_path` only.
        batch_size: the calibration batch size.
        cache_path: calibration cache, read if it exists (then no batch is needed) and written
            after calibration.
        input_shape: `(H, W, 3)` of one image.
    """
    trt = import_tensorrt()
    cache_path = Path(cache_path)

    class DatasetCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds dataset batches to TensorRT through one device buffer."""

        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches or ())
            self._host = PinnedArray((batch_size, *input_shape), np.uint8)
            self._device = DeviceBuffer(self._host.array.nbytes)
            self._stream = Stream()
            self.seen = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names):
            for batch in self._batches:
                if len(batch) != batch_size:
                    continue
                self._host.array[...] = batch
                self._stream.to_device(self._device, self._host, self._host.array.nbytes)
                self._stream.synchronize()
                self.seen += len(batch)
                return [self._device.ptr]
            return None

        def read_calibration_cache(self):
            if cache_path.is_file():
                LOG.info('using INT8 calibration cache %s', cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            atomic_write(cache_path, bytes(cache))
            LOG.info('wrote INT8 calibration cache %s (%d images)', cache_path, self.seen)

    return DatasetCalibrator()


def build(onnx_path: str | Path, engine_path: str | Path | None = None,
          precision: str = 'fp16', calib_data: str | Path | None = None,
          calib_split: str = 'val', calib_images: int = 500, calib_batch: int = 8,
          calib_cache: str | Path | None = None, rebuild: bool = False,
          timing_cache: str | Path | None = None, workspace_gib: float = 4.0,
          max_batch: int = 1, device_index: int = 0) -> EngineBuild:
    """Build (or reuse) an engine; for int8, calibrate on a dataset split or replay a cache.

    Args:
        onnx_path: exported ONNX file.
        engine_path: destination (default `<onnx stem>.<precision>.engine` beside the ONNX).
        precision: 'fp32', 'fp16' or 'int8'.
        calib_data: dataset root in the ACDC layout (int8).
        calib_split: split used for calibration.
        calib_images: at most this many calibration images (a seeded subset).
        calib_batch: calibration batch size.
        calib_cache: calibration cache (default `<onnx stem>.int8.calib` beside the ONNX).
        rebuild: replace a stale cached engine.
        timing_cache: timing cache file (default beside the engine).
        workspace_gib: builder workspace limit.
        max_batch: largest batch of a dynamic-batch profile.
        device_index: CUDA device.
    """
    onnx_path = Path(onnx_path)
    calibrator = None
    if precision == 'int8':
        metadata, _ = inspect_onnx(onnx_path)
        height, width = metadata['input_size']
        cache = Path(calib_cache) if calib_cache else onnx_path.with_suffix('.int8.calib')
        batches = None
        if calib_data is not None:
            dataset = build_dataset('acdc', calib_data, calib_split)
            batches = (images for images, _ in network_batches(
                dataset, (height, width), batch_size=calib_batch, max_images=calib_images))
        elif not cache.is_file():
            raise ValueError(f'int8 needs --calib-data DIR or an existing calibration cache '
                             f'({cache} does not exist)')
        set_device(device_index)  # calibration buffers live there
        calibrator = make_entropy_calibrator(batches, calib_batch, cache, (height, width, 3))
    return build_engine(onnx_path, engine_path, precision, rebuild=rebuild,
                        calibrator=calibrator, timing_cache=timing_cache,
                        workspace_gib=workspace_gib, max_batch=max_batch,
                        device_index=device_index)
