"""The metadata object an exported model carries (docs/model_file.md), built and validated.

Torch-free, so that wrapping a foreign ONNX (`seg-kd export --onnx`) needs no PyTorch.
"""

from collections.abc import Sequence
import datetime
import json

from seg_kd_ros.model_metadata import FORMAT_VERSION, ModelMetadata, load_classes_file
from seg_kd_ros.postprocess import IGNORE_INDEX


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


def weights_classes(info: dict) -> tuple[list[str], list[list[int]]]:
    """The class names and palette a weights file carries, else `class_names_and_palette`.

    `seg-kd import-checkpoint --classes FILE` stores them in the file; without them (a trained
    student) the defaults for its number of classes apply.

    Args:
        info: the file's metadata (`read_weights_metadata`).
    """
    if not info.get('classes'):
        return class_names_and_palette(info['num_classes'])
    names = list(info['classes'])
    palette = info.get('palette')
    return names, palette if palette else class_names_and_palette(len(names))[1]


def classes_from(spec: str) -> tuple[list[str], list[list[int]]]:
    """`cityscapes` (the 19 trainIds) or a classes file (config/cityscapes_classes.yaml's format).

    Raises:
        MetadataError: an unreadable or malformed classes file.
    """
    if spec == 'cityscapes':
        return class_names_and_palette(19)
    return load_classes_file(spec)


def build_metadata(model_name: str, num_classes: int, input_size: Sequence[int],
                   temperature: float = 1.0, extra: dict | None = None, *,
                   classes: tuple[list[str], list[list[int]]] | None = None,
                   mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None) -> dict:
    """Return the metadata object of docs/model_file.md (format 2), validated.

    Args:
        model_name: registry name of the network (or any name, for a foreign model).
        num_classes: number of output classes.
        input_size: network input `(height, width)`.
        temperature: calibration temperature (1.0: none).
        extra: informative keys (recipe, metrics, ...), ignored by the node.
        classes: `(names, palette)`; default `class_names_and_palette(num_classes)`.
        mean: RGB normalisation mean in [0, 1] units (default ImageNet's).
        std: RGB normalisation std in [0, 1] units (default ImageNet's).

    Raises:
        ValueError: an extra key that would override a contract key.
        MetadataError: a value the node would refuse.
    """
    from seg_kd_train.data.cityscapes_labels import IMAGENET_MEAN, IMAGENET_STD

    names, palette = classes or class_names_and_palette(num_classes)
    meta = {
        'format': FORMAT_VERSION,
        'model_name': model_name,
        'classes': list(names),
        'palette': [list(c) for c in palette],
        'mean': [float(v) for v in (IMAGENET_MEAN if mean is None else mean)],
        'std': [float(v) for v in (IMAGENET_STD if std is None else std)],
        'input_size': [int(input_size[0]), int(input_size[1])],
        'temperature': float(temperature),
        'ignore_index': IGNORE_INDEX,
        'exported_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    for key, value in (extra or {}).items():
        if key in meta and key != 'exported_at':
            raise ValueError(f'extra metadata key {key!r} would override a contract key')
        meta[key] = value
    if len(meta['classes']) != num_classes:
        raise ValueError(f'{len(meta["classes"])} class names for {num_classes} classes')
    validate_metadata(meta, source=f'metadata of {model_name}')
    return meta


def validate_metadata(meta: dict, source: str) -> None:
    """Check `meta` with the node's own validator, so an export never writes what it rejects."""
    json.dumps(meta)  # must be plain JSON
    ModelMetadata.from_dict(meta, source=source)
