"""Export a network with its deploy head to ONNX (and `.pt2`), with metadata and a parity check.

One `torch.export` program serves both files: ONNX through the dynamo-based `torch.onnx.export`
(opset 18), `.pt2` through `torch.export.save` with the metadata as the extra file
`seg_kd_ros.json` (docs/model_file.md).
"""

import contextlib
from dataclasses import asdict, dataclass
import io
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.export import Dim

from seg_kd_ros.atomic_files import atomic_path
from seg_kd_train.export.deploy_head import METADATA_KEY, DeployHead

LOG = logging.getLogger(__name__)
OPSET = 18
INPUT_NAME = 'image'
OUTPUT_NAMES = ('labels', 'confidence')
PT2_EXTRA_FILE = 'seg_kd_ros.json'


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
    """Trace the deploy head with `torch.export` on a zero image of the given size.

    Args:
        head: the wrapped network, in eval mode.
        input_size: `(height, width)` of the example input.
        batch: batch size of the example input (at least 2 when dynamic: torch.export
            specialises a size-1 dimension).
        dynamic: make batch, height and width symbolic (the export fails with the reason if the
            network specialises on one of them, e.g. a pooling grid computed from the size).
    """
    head = head.eval()
    dynamic_shapes = None
    if dynamic:
        batch = max(batch, 2)
        dynamic_shapes = {'image': {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}}
    example = torch.zeros(batch, 3, int(input_size[0]), int(input_size[1]))
    with torch.no_grad():
        head(example)  # one eager pass first: shape errors surface here, with a plain traceback
        return torch.export.export(head, (example,), dynamic_shapes=dynamic_shapes, strict=False)


def export_onnx(program: torch.export.ExportedProgram, out_path: str | Path, metadata: dict,
                opset: int = OPSET) -> Path:
    """Write `program` as ONNX with the metadata entry, fully checked, atomically.

    Args:
        program: the exported deploy head (`export_program`).
        out_path: destination `.onnx` file.
        metadata: the metadata object (`build_metadata`), stored under the key `seg_kd_ros`.
        opset: ONNX opset (>= 17).
    """
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')
    out_path = Path(out_path)
    chatter = io.StringIO()  # the exporter prints its progress; keep it for the debug log
    with contextlib.redirect_stdout(chatter):
        onnx_program = torch.onnx.export(program, (), input_names=[INPUT_NAME],
                                         output_names=list(OUTPUT_NAMES), opset_version=opset,
                                         dynamo=True, external_data=False, verbose=False)
    LOG.debug('torch.onnx.export: %s', chatter.getvalue())
    model = onnx_program.model_proto
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return out_path


def export_pt2(program: torch.export.ExportedProgram, out_path: str | Path,
               metadata: dict) -> Path:
    """Write `program` as a `.pt2` archive with the metadata as extra file, atomically."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        torch.export.save(program, str(tmp), extra_files={PT2_EXTRA_FILE: json.dumps(metadata)})
    return out_path


def read_onnx_metadata(path: str | Path) -> dict:
    """Return the `seg_kd_ros` metadata object of an ONNX file (weights not loaded)."""
    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise KeyError(f'{path} has no {METADATA_KEY!r} entry in its ONNX metadata_props')


def parity_check(head: DeployHead, onnx_path: str | Path, images: torch.Tensor,
                 providers: tuple[str, ...] = ('CPUExecutionProvider',)) -> ParityReport:
    """Compare the deploy head in PyTorch with the ONNX file in ONNX Runtime on `images`.

    Args:
        head: the deploy head that was exported.
        onnx_path: the exported file.
        images: float32 `[N, 3, H, W]`, normalised; N must suit the file's batch size.
        providers: ONNX Runtime execution providers.
    """
    import onnxruntime as ort

    with torch.no_grad():
        labels_pt, conf_pt = (t.numpy() for t in head.eval()(images))
    session = ort.InferenceSession(str(onnx_path), providers=list(providers))
    labels_ort, conf_ort = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    if labels_ort.dtype != np.uint8 or labels_ort.shape != labels_pt.shape:
        raise RuntimeError(f'{onnx_path}: labels output is {labels_ort.dtype} {labels_ort.shape}, '
                           f'expected uint8 {labels_pt.shape}')
    diff = np.abs(conf_ort.astype(np.float64) - conf_pt.astype(np.float64))
    return ParityReport(label_agreement=float(np.mean(labels_ort == labels_pt)),
                        max_confidence_diff=float(diff.max()),
                        mean_confidence_diff=float(diff.mean()), pixels=int(labels_pt.size))


def random_images(input_size: tuple[int, int], batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Normalised images of smooth random colour blobs (a fallback when no data is given)."""
    generator = torch.Generator().manual_seed(seed)
    h, w = int(input_size[0]), int(input_size[1])
    coarse = torch.rand(batch, 3, max(h // 16, 2), max(w // 16, 2), generator=generator)
    pixels = torch.nn.functional.interpolate(coarse, size=(h, w), mode='bilinear',
                                             align_corners=False)
    pixels = pixels + 0.05 * torch.randn(batch, 3, h, w, generator=generator)
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((pixels.clamp(0, 1) - mean) / std).float()
