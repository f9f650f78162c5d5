"""A segmentation ONNX from elsewhere into the model file (`seg-kd export --onnx`), without torch.

The foreign graph gets the same deploy head and metadata as the project's own exports
(`onnx_head.attach_deploy_head`); the result is then loaded by the node's own backend and checked
against the original graph in ONNX Runtime: its labels must equal the argmax of the kept logits
(upsampled to the input size first when the model returns them smaller), bit for bit.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from seg_kd_ros.backends import create_backend
from seg_kd_train.export.metadata import build_metadata, classes_from
from seg_kd_train.export.onnx_head import (
    attach_deploy_head,
    normalisation_constants,
    save_model_file,
)

_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16,
          TensorProto.DOUBLE: np.float64}


@dataclass
class ForeignParity:
    """The wrapped file against the original graph on the same frames."""

    labels_equal: float  # fraction of pixels whose label equals the reference argmax
    pixels: int
    upsampled: bool  # the logits were smaller than the input and the head upsampled them

    def __str__(self) -> str:
        how = 'upsampled logits' if self.upsampled else 'logits'
        return (f'labels equal to the argmax of the kept {how} of the original graph on '
                f'{100 * self.labels_equal:.4f} % of {self.pixels} pixels')


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file, or raise ValueError with one line saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: ONNX file does not exist')
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f'{path}: not a readable ONNX model ({reason})') from None
    return model


def frames_for_check(input_size: Sequence[int], count: int = 2, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames of coarse colour blocks plus noise, so many classes and edges show up."""
    rng = np.random.default_rng(seed)
    height, width = int(input_size[0]), int(input_size[1])
    coarse = rng.integers(0, 256, (count, height // 8 + 1, width // 8 + 1, 3), dtype=np.int16)
    frames = coarse.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width]
    noisy = frames + rng.integers(-12, 13, frames.shape, dtype=np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _upsample(logits: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear half-pixel upsampling in ONNX Runtime (what the head's Resize node does)."""
    import onnxruntime as ort

    graph = helper.make_graph(
        [helper.make_node('Resize', ['x', '', '', 'sizes'], ['y'], mode='linear',
                          coordinate_transformation_mode='half_pixel')], 'upsample',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, list(logits.shape))],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([*logits.shape[:2], *size], np.int64), 'sizes')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {'x': logits})[0]


def reference_labels(model: onnx.ModelProto, logits: str, frames: np.ndarray,
                     mean: Sequence[float], std: Sequence[float],
                     keep_channels: Sequence[int]) -> tuple[np.ndarray, bool]:
    """Labels from the original graph in ONNX Runtime: argmax of the kept (upsampled) logits.

    The frames are normalised in float32 with the head's own constants and arithmetic,
    `(x - 255 mean) * (1 / (255 std))`, so the original graph sees the same input as the wrapped.
    """
    import onnxruntime as ort

    inits = {t.name for t in model.graph.initializer}
    net_in = next(i for i in model.graph.input if i.name not in inits)
    mean255, scale = normalisation_constants(mean, std)
    x = (frames.transpose(0, 3, 1, 2).astype(np.float32) - mean255) * scale
    x = x.astype(_NUMPY.get(net_in.type.tensor_type.elem_type, np.float32))
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    static_batch = net_in.type.tensor_type.shape.dim[0].dim_value == 1
    runs = [x[i:i + 1] for i in range(len(x))] if static_batch else [x]
    z = np.concatenate([session.run([logits], {net_in.name: r})[0] for r in runs])
    z = z.astype(np.float32)[:, list(keep_channels)]
    upsampled = z.shape[2:] != frames.shape[1:3]
    if upsampled:
        z = _upsample(np.ascontiguousarray(z), frames.shape[1:3])
    return z.argmax(axis=1).astype(np.uint8), upsampled


def wrap_foreign_onnx(onnx_path: str | Path, out_path: str | Path, logits: str, classes: str,
                      mean: Sequence[float], std: Sequence[float], input_size: Sequence[int],
                      keep_channels: Sequence[int] | None = None, temperature: float = 1.0,
                      model_name: str | None = None) -> tuple[dict, ForeignParity]:
    """Write a model file from a foreign logits ONNX and check it against the original.

    Args:
        onnx_path: the foreign `.onnx` (one float `[N, 3, H, W]` RGB input, a logits output).
        out_path: destination model file.
        logits: name of the logits output.
        classes: `cityscapes` or a classes file (names and colours, index = kept channel order).
        mean: RGB mean in [0, 1] units the model was trained with.
        std: RGB std in [0, 1] units.
        input_size: network input (height, width) the node resizes frames to.
        keep_channels: logit channels to keep, in class order (default all).
        temperature: confidence temperature (1.0: none).
        model_name: name stored in the metadata (default the file's stem).

    Returns:
        (metadata, parity).

    Raises:
        ValueError: an unreadable file, a graph the head cannot take, bad metadata, or a parity
            failure (the output file is then removed).
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    model = load_onnx(onnx_path)
    names, palette = classes_from(classes)
    keep = list(range(len(names))) if keep_channels is None else list(keep_channels)
    metadata = build_metadata(model_name or onnx_path.stem, len(names), input_size, temperature,
                              extra={'source_onnx': onnx_path.name, 'logits_output': logits,
                                     'keep_channels': keep},
                              classes=(names, palette), mean=mean, std=std)
    wrapped = attach_deploy_head(model, logits, metadata, keep, source=str(onnx_path))
    save_model_file(wrapped, out_path)
    try:
        frames = frames_for_check(input_size)
        with create_backend(out_path, 'onnxruntime') as backend:  # the node's loader and checks
            labels, _ = backend.infer(frames)
        reference, upsampled = reference_labels(model, logits, frames, mean, std, keep)
        parity = ForeignParity(float(np.mean(labels == reference)), int(labels.size), upsampled)
        if parity.labels_equal != 1.0:
            raise ValueError(f'{out_path}: {parity}, expected 100 %; the wrapped graph does not '
                             f'compute what the original does')
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return metadata, parity
