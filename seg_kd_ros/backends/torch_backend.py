"""PyTorch backend: runs a `.pt2` torch.export program (for debugging and parity checks).

The archive holds the exported program, whose forward maps the camera's bytes, `image` uint8
`[N, H, W, 3]` RGB, to (`labels` uint8, `confidence` float32), and the metadata object as the
extra file `seg_kd_ros.json` (docs/model_file.md). Loading it needs torch but no training code.
"""

import logging
from pathlib import Path
import zipfile

import numpy as np
import torch

from seg_kd_ros.backends import InferenceBackend, ModelLoadError, check_device
from seg_kd_ros.model_metadata import METADATA_KEY, MetadataError, ModelMetadata

_log = logging.getLogger(__name__)
EXTRA_FILE = f'{METADATA_KEY}.json'


def _node_value(program: 'torch.export.ExportedProgram', name: str):
    for node in program.graph.nodes:
        if node.name == name:
            return node.meta.get('val')
    return None


def _quiet_load(source: str, extra: dict) -> 'torch.export.ExportedProgram':
    """torch.export.load without the traceback torch logs before raising on a bad archive."""
    logger = logging.getLogger('torch.export')
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return torch.export.load(source, extra_files=extra)
    finally:
        logger.setLevel(level)


class TorchBackend(InferenceBackend):
    """Runs a `.pt2` model file with PyTorch on the CPU or a CUDA GPU."""

    name = 'torch'

    def __init__(self, model_path: str | Path, device: str = 'cpu') -> None:
        """Load the program and move it to `device`.

        Args:
            model_path: the `.pt2` file written by `torch.export.save`.
            device: 'cpu', 'cuda' or 'cuda:N'.

        Raises:
            ModelLoadError: missing, unreadable or corrupt file, no or invalid metadata, a
                signature other than docs/model_file.md's, or an unavailable device.
        """
        self.model_path = Path(model_path)
        self.device = check_device(device)
        source = str(self.model_path)
        if device != 'cpu' and not torch.cuda.is_available():
            raise ModelLoadError(f"{source}: device '{device}' requested but torch sees no CUDA "
                                 f'GPU (torch {torch.__version__})')
        extra = {EXTRA_FILE: ''}
        try:
            if not zipfile.is_zipfile(source):
                raise ModelLoadError(f'{source}: not a loadable torch.export archive (not a zip '
                                     f'file)')
            program = _quiet_load(source, extra)
        except OSError as exc:
            raise ModelLoadError(f'{source}: cannot read model file ({exc.strerror})') from None
        except ModelLoadError:
            raise
        except Exception as exc:  # zipfile, pickle and deserialisation errors
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
            raise ModelLoadError(f'{source}: not a loadable torch.export archive '
                                 f'({type(exc).__name__}: {reason})') from None
        text = extra[EXTRA_FILE]
        if not text:
            raise ModelLoadError(f"{source}: archive has no '{EXTRA_FILE}' extra file with the "
                                 f'model metadata (save it with extra_files=...)')
        try:
            self.metadata = ModelMetadata.from_json(text, source)
        except MetadataError as exc:
            raise ModelLoadError(str(exc)) from None
        self._batch = self._check_signature(program, source)
        floats = [t.dtype for t in program.state_dict.values() if t.is_floating_point()]
        self.precision = 'fp16' if floats and all(
            d in (torch.float16, torch.bfloat16) for d in floats) else 'fp32'
        if device != 'cpu':
            program = torch.export.passes.move_to_device_pass(program, device)
        self._torch_device = torch.device(device)
        self._module = program.module()
        _log.info('%s loaded on %s', source, device)

    def _check_signature(self, program: 'torch.export.ExportedProgram',
                         source: str) -> int | None:
        """Check the program's input and outputs; return its static batch size if it has one."""
        inputs = program.graph_signature.user_inputs
        outputs = program.graph_signature.user_outputs
        if len(inputs) != 1 or len(outputs) != 2:
            raise ModelLoadError(f'{source}: program must map one image to (labels, confidence); '
                                 f'it takes {len(inputs)} inputs and returns {len(outputs)}')
        image = _node_value(program, inputs[0])
        labels, confidence = (_node_value(program, name) for name in outputs)
        if (image is None or image.dtype != torch.uint8 or image.dim() != 4
                or image.shape[3] != 3):
            got = None if image is None else (tuple(image.shape), image.dtype)
            raise ModelLoadError(f'{source}: input must be uint8 [N, H, W, 3], got {got}')
        for what, value, dtype in (('labels', labels, torch.uint8),
                                   ('confidence', confidence, torch.float32)):
            if value is None or value.dtype != dtype:
                got = None if value is None else value.dtype
                raise ModelLoadError(f'{source}: output {what} must be {dtype}, got {got}')
        shape = tuple(image.shape)
        for dim, size in zip(shape[1:3], self.metadata.input_size, strict=True):
            if isinstance(dim, int) and dim != size:
                raise ModelLoadError(f'{source}: program input is {list(shape)} but the '
                                     f'metadata input_size is {list(self.metadata.input_size)}')
        return shape[0] if isinstance(shape[0], int) else None

    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(batch).to(self._torch_device)
        labels, confidence = self._module(x)
        return labels.cpu().numpy(), confidence.float().cpu().numpy()

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            if self._batch is None or self._batch == len(batch):
                return self._forward(batch)
            if self._batch != 1:
                raise ValueError(f'{self.model_path.name} takes batches of exactly '
                                 f'{self._batch}, got {len(batch)}')
            results = [self._forward(batch[i:i + 1]) for i in range(len(batch))]
        return (np.concatenate([r[0] for r in results]),
                np.concatenate([r[1] for r in results]))

    def close(self) -> None:
        """Drop the module and free cached GPU memory."""
        self._module = None
        if self.device != 'cpu':
            torch.cuda.empty_cache()
