"""A weights file -> a model file: what `seg-kd export --weights` does after parsing.

Optionally fits the confidence temperature on a calibration split first, writes the ONNX with the
deploy head and metadata, checks PyTorch against ONNX Runtime on frames of that split (or
synthetic ones), and optionally writes a `.pt2` program too.
"""

from collections.abc import Callable
from pathlib import Path
import time

from seg_kd_train.errors import SegKdError


def fit_temperature_on(model, num_classes: int, data: Path, split: str,
                       input_size: tuple[int, int], max_images: int):
    """Fit the temperature on a dataset split (ACDC layout); return the `CalibrationResult`."""
    from torch import nn

    from seg_kd_train.data import build_dataset
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD
    from seg_kd_train.export.calibration import calibrate, collect_logits
    from seg_kd_train.export.deploy_head import Normalise
    from seg_kd_train.export.samples import network_batches

    dataset = build_dataset('acdc', data, split)
    if len(dataset) == 0:
        raise SegKdError(f'--calib-data {data}: split {split!r} has no images')
    batches = network_batches(dataset, input_size, batch_size=2, max_images=max_images)
    network = nn.Sequential(Normalise(IMAGENET_MEAN, IMAGENET_STD), model).eval()
    logits, labels, images = collect_logits(network, batches, num_classes=num_classes)
    return calibrate(logits, labels, images)


def parity_frames(data: Path | None, split: str, input_size: tuple[int, int], batch: int):
    """uint8 frames for the parity check: from the calibration split if given, else synthetic."""
    from seg_kd_train.export.onnx_export import random_frames

    if data is None:
        return random_frames(input_size, batch)
    from seg_kd_train.data import build_dataset
    from seg_kd_train.export.samples import network_batches

    dataset = build_dataset('acdc', data, split)
    images, _ = next(network_batches(dataset, input_size, batch_size=batch, max_images=batch))
    if len(images) < batch:
        return random_frames(input_size, batch)
    return images


def export_weights(weights: Path, out: Path, input_size: tuple[int, int], *,
                   temperature: float | None = None, calib_data: Path | None = None,
                   calib_split: str = 'val', calib_images: int = 200, dynamic: bool = False,
                   opset: int = 18, pt2: Path | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Export a weights file to an ONNX model file (and optionally a `.pt2`).

    Args:
        weights: a `.safetensors` weights file of this project.
        out: the `.onnx` to write (atomically).
        input_size: network (height, width).
        temperature: the confidence temperature; None fits one on `calib_data`, or uses 1.0
            without it.
        calib_data: dataset root (ACDC layout) to fit the temperature on and take parity frames
            from.
        calib_split: its split.
        calib_images: at most this many images for the fit.
        dynamic: symbolic batch, height and width.
        opset: ONNX opset.
        pt2: also write a torch.export program here.
        log: where progress lines go.

    Returns:
        {'onnx', 'metadata', 'parity' (dict), 'seconds'}.
    """
    from seg_kd_train.export.deploy_head import DeployHead, build_metadata
    from seg_kd_train.export.metadata import weights_classes
    from seg_kd_train.export.onnx_export import (
        export_onnx,
        export_program,
        export_pt2,
        parity_check,
    )
    from seg_kd_train.models.weights import load_model_weights, read_weights_metadata

    started = time.monotonic()
    info = read_weights_metadata(weights)
    model = load_model_weights(weights).eval()
    calibration = None
    if temperature is not None:
        log(f'temperature {temperature} (given)')
    elif calib_data is not None:
        calibration = fit_temperature_on(model, info['num_classes'], calib_data, calib_split,
                                         input_size, calib_images)
        temperature = calibration.temperature
        log(f'calibration: {calibration}')
    else:
        temperature = 1.0
        log('temperature 1.0 (no --calib-data: confidence is not calibrated)')
    extra = {'weights_file': weights.name, 'model_kwargs': info['model_kwargs'],
             'dynamic': bool(dynamic)}
    if calibration is not None:
        extra['calibration'] = {**calibration.as_dict(), 'split': calib_split}
    metadata = build_metadata(info['model_name'], info['num_classes'], input_size, temperature,
                              extra=extra, classes=weights_classes(info))
    head = DeployHead(model, temperature).eval()
    export_onnx(head, out, metadata, opset=opset, dynamic=dynamic)
    log(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {opset}, '
        f"{'dynamic' if dynamic else 'static'} shape, input {input_size[0]}x{input_size[1]})")
    report = parity_check(head, out, parity_frames(calib_data, calib_split, input_size,
                                                   2 if dynamic else 1))
    log(f'parity PyTorch vs ONNX Runtime: {report}')
    if pt2 is not None:
        export_pt2(export_program(head, input_size, dynamic=dynamic), pt2, metadata)
        log(f'wrote {pt2}')
    return {'onnx': str(out), 'metadata': metadata, 'parity': report.as_dict(),
            'seconds': round(time.monotonic() - started, 1)}
