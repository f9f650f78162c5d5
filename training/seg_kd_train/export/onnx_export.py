"""Export a network with its deploy head to ONNX (and `.pt2`), with metadata and a parity check.

ONNX: the bare network through the dynamo-based `torch.onnx.export` (opset 18), its bicubic
downsampling by even factors rewritten as a fixed depthwise convolution (`onnx_resize`: ONNX
Runtime's cubic `Resize` is slow on CPU), then the deploy head by graph surgery
(`onnx_head.attach_deploy_head`, the same code that wraps foreign ONNX files). `.pt2`: the
PyTorch `DeployHead` through `torch.export.save`, the metadata as the extra file the node's
`.pt2` backend reads (`seg_kd_ros.json`, docs/model_file.md). The parity check compares the two.
"""

import contextlib
from dataclasses import asdict, dataclass
import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from torch import nn
from torch.export import Dim

from seg_kd_ros.atomic_files import atomic_path
from seg_kd_ros.backends.torch_backend import EXTRA_FILE
from seg_kd_ros.model_metadata import METADATA_KEY
from seg_kd_train.export.deploy_head import DeployHead
from seg_kd_train.export.onnx_head import attach_deploy_head, save_model_file
from seg_kd_train.export.onnx_resize import replace_cubic_downsampling

LOG = logging.getLogger(__name__)
OPSET = 18
LOGITS = 'logits'


@dataclass
class ParityReport:
    """PyTorch vs ONNX Runtime agreement on one batch."""

    label_agreement: float  # fraction of pixels with the same label, in [0, 1]
    max_confidence_diff: float
    mean_confidence_diff: float
    pixels: int

    def __str__(self) -> str:
        return (f'label agreement {100 * self.label_agreement:.4f} % of {self.pixels} pixels, '
                f'max |confidence diff| {self.max_confidence_diff:.2e}, '
                f'mean {self.mean_confidence_diff:.2e}')

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def export_program(head: DeployHead, input_size: tuple[int, int], batch: int = 1,
                   dynamic: bool = False) -> torch.export.ExportedProgram:
    """Trace the deploy head (uint8 NHWC in) with `torch.export`, for the `.pt2` file.

    Args:
        head: the wrapped network, in eval mode.
        input_size: `(height, width)` of the example input.
        batch: batch size of the example input (at least 2 when dynamic: torch.export
            specialises a size-1 dimension).
        dynamic: make batch, height and width symbolic (the export fails with the reason if the
            network specialises on one of them, e.g. a pooling grid computed from the size).
    """
    example, dynamic_shapes = _example(input_size, batch, dynamic, channels_last=True)
    head = head.eval()
    with torch.no_grad():
        head(example)  # one eager pass first: shape errors surface here, with a plain traceback
        return torch.export.export(head, (example,), dynamic_shapes=dynamic_shapes, strict=False)


def _example(input_size, batch: int, dynamic: bool, channels_last: bool):
    """A zero example input (uint8 NHWC or float NCHW) and its dynamic shapes."""
    dynamic_shapes = None
    if dynamic:
        batch = max(batch, 2)
        axes = (1, 2) if channels_last else (2, 3)
        dynamic_shapes = {0: Dim.DYNAMIC, axes[0]: Dim.DYNAMIC, axes[1]: Dim.DYNAMIC}
    height, width = int(input_size[0]), int(input_size[1])
    if channels_last:
        return torch.zeros(batch, height, width, 3, dtype=torch.uint8), (
            None if dynamic_shapes is None else {'image': dynamic_shapes})
    return torch.zeros(batch, 3, height, width), (
        None if dynamic_shapes is None else {'x': dynamic_shapes})


class _Logits(nn.Module):
    """The bare network, `forward(x) -> logits`, with a fixed argument name for dynamic shapes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def export_onnx(head: DeployHead, out_path: str | Path, metadata: dict,
                opset: int = OPSET, dynamic: bool = False) -> Path:
    """Write the model file: the bare network as ONNX, then the deploy head by graph surgery.

    The network (`head.model`, image -> logits) goes through the dynamo-based
    `torch.onnx.export`; `attach_deploy_head` then adds the normalisation in front and argmax and
    confidence behind it, the one implementation of the head that foreign ONNX files get too.

    Args:
        head: the deploy head (its network and temperature; the metadata's mean and std are used).
        out_path: destination `.onnx` file, written atomically with the umask's mode.
        metadata: the metadata object (`build_metadata`), stored under the key `seg_kd_ros`.
        opset: ONNX opset (>= 17).
        dynamic: symbolic batch, height and width.
    """
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')
    if abs(float(metadata['temperature']) - head.temperature) > 1e-12:
        raise ValueError(f"metadata temperature {metadata['temperature']} differs from the "
                         f"head's {head.temperature}")
    example, dynamic_shapes = _example(metadata['input_size'], 1, dynamic, channels_last=False)
    network = _Logits(head.model).eval()
    with torch.no_grad():
        network(example)
        program = torch.export.export(network, (example,), dynamic_shapes=dynamic_shapes,
                                      strict=False)
    chatter = io.StringIO()  # the exporter prints its progress; keep it for the debug log
    with contextlib.redirect_stdout(chatter):
        onnx_program = torch.onnx.export(program, (), input_names=['network_input'],
                                         output_names=[LOGITS], opset_version=opset,
                                         dynamo=True, external_data=False, verbose=False)
    LOG.debug('torch.onnx.export: %s', chatter.getvalue())
    network_proto, rewritten = replace_cubic_downsampling(onnx_program.model_proto)
    LOG.debug('%d bicubic downsampling resizes rewritten as convolutions', rewritten)
    model = attach_deploy_head(network_proto, LOGITS, metadata, source=str(out_path))
    return save_model_file(model, out_path)


def export_pt2(program: torch.export.ExportedProgram, out_path: str | Path,
               metadata: dict) -> Path:
    """Write `program` as a `.pt2` archive with the metadata as extra file, atomically."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        torch.export.save(program, str(tmp), extra_files={EXTRA_FILE: json.dumps(metadata)})
    return out_path


def read_onnx_metadata(path: str | Path) -> dict:
    """Return the `seg_kd_ros` metadata object of an ONNX file (weights not loaded)."""
    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise KeyError(f'{path} has no {METADATA_KEY!r} entry in its ONNX metadata_props')


def parity_check(head: DeployHead, onnx_path: str | Path, frames: np.ndarray) -> ParityReport:
    """Compare the deploy head in PyTorch with the model file in the node's ONNX Runtime backend.

    Args:
        head: the deploy head that was exported.
        onnx_path: the exported file.
        frames: uint8 RGB `[N, H, W, 3]` at the model's input size.
    """
    from seg_kd_ros.backends import create_backend

    with torch.no_grad():
        labels_pt, conf_pt = (t.numpy() for t in head.eval()(torch.from_numpy(frames)))
    with create_backend(onnx_path, 'onnxruntime') as backend:
        labels_ort, conf_ort = backend.infer(frames)
    diff = np.abs(conf_ort.astype(np.float64) - conf_pt.astype(np.float64))
    return ParityReport(label_agreement=float(np.mean(labels_ort == labels_pt)),
                        max_confidence_diff=float(diff.max()),
                        mean_confidence_diff=float(diff.mean()), pixels=int(labels_pt.size))


def random_frames(input_size: tuple[int, int], batch: int = 1, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames `[N, H, W, 3]` of smooth random colour blobs (when no data is given)."""
    rng = np.random.default_rng(seed)
    h, w = int(input_size[0]), int(input_size[1])
    frames = []
    for _ in range(batch):
        coarse = rng.random((max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        noisy = smooth + 0.05 * rng.standard_normal((h, w, 3)).astype(np.float32)
        frames.append(np.clip(noisy * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.stack(frames)
