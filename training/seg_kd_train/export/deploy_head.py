"""The deploy head and the metadata object that an exported model carries (docs/model_file.md).

The deploy head wraps a segmentation network (`forward(x) -> logits [N, C, H, W]`) so that the
exported graph returns what the node publishes: labels (argmax, uint8) and confidence (the max
softmax probability of `logits / temperature`), never the C x H x W logits themselves.
"""

import datetime
import json

import torch
from torch import nn

from seg_kd_ros.model_metadata import FORMAT_VERSION, METADATA_KEY, ModelMetadata

__all__ = ['METADATA_KEY', 'DeployHead', 'build_metadata', 'class_names_and_palette']

IGNORE_INDEX = 255


class DeployHead(nn.Module):
    """A segmentation network followed by argmax and calibrated max-softmax confidence.

    Shape:
        - image: float32 `[N, 3, H, W]`, normalised as `(pixel / 255 - mean) / std`.
        - labels: uint8 `[N, H, W]`, the argmax over classes.
        - confidence: float32 `[N, H, W]` in [0, 1], `max softmax(logits / temperature)`.
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.model = model
        self.temperature = float(temperature)
        self.register_buffer('inv_temperature', torch.tensor(1.0 / float(temperature)),
                             persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(labels, confidence)` for a normalised image batch."""
        logits = self.model(image)
        if logits.shape[-2:] != image.shape[-2:]:
            raise ValueError(f'model returned logits of spatial size {tuple(logits.shape[-2:])}, '
                             f'expected the input size {tuple(image.shape[-2:])}')
        labels = logits.argmax(dim=1).to(torch.uint8)
        # max softmax(z / T) = 1 / sum_c exp((z_c - max z) / T): the same value without a full
        # softmax over the class axis, which ONNX Runtime on CPU runs ~10x slower (NCHW layout).
        logits = logits.float()
        top = logits.amax(dim=1, keepdim=True)
        confidence = torch.exp((logits - top) * self.inv_temperature).sum(dim=1).reciprocal()
        return labels, confidence


def class_names_and_palette(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """Cityscapes names and palette for 19 classes; generic names and colours otherwise."""
    from seg_kd_train.data.cityscapes_labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

    if num_classes == len(CITYSCAPES_CLASSES):
        return list(CITYSCAPES_CLASSES), [list(map(int, c)) for c in CITYSCAPES_PALETTE]
    names = [f'class_{i}' for i in range(num_classes)]
    # Spread hues with a fixed integer hash so that colours are stable and distinct enough.
    palette = [[(37 * i + 80) % 256, (91 * i + 40) % 256, (153 * i + 20) % 256]
               for i in range(num_classes)]
    return names, palette


def build_metadata(model_name: str, num_classes: int, input_size: tuple[int, int],
                   temperature: float = 1.0, extra: dict | None = None) -> dict:
    """Return the metadata object of docs/model_file.md (format 1), validated.

    Args:
        model_name: registry name of the network.
        num_classes: number of output classes.
        input_size: network input `(height, width)`.
        temperature: calibration temperature (1.0: none).
        extra: informative keys (recipe, metrics, ...), ignored by the node.
    """
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

    classes, palette = class_names_and_palette(num_classes)
    meta = {
        'format': FORMAT_VERSION,
        'model_name': model_name,
        'classes': classes,
        'palette': palette,
        'mean': [float(v) for v in IMAGENET_MEAN],
        'std': [float(v) for v in IMAGENET_STD],
        'input_size': [int(input_size[0]), int(input_size[1])],
        'temperature': float(temperature),
        'ignore_index': IGNORE_INDEX,
        'exported_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'torch_version': torch.__version__,
    }
    for key, value in (extra or {}).items():
        if key in meta and key not in ('exported_at', 'torch_version'):
            raise ValueError(f'extra metadata key {key!r} would override a contract key')
        meta[key] = value
    validate_metadata(meta, source=f'metadata of {model_name}')
    return meta


def validate_metadata(meta: dict, source: str) -> None:
    """Check `meta` with the node's own validator, so an export never writes what it rejects."""
    json.dumps(meta)  # must be plain JSON
    ModelMetadata.from_dict(meta, source=source)
