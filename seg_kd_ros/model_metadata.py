"""The metadata a model file carries (docs/model_file.md), and class files that override it."""

from dataclasses import asdict, dataclass, replace
import json
import math
from pathlib import Path
from typing import Any

import yaml

FORMAT_VERSION = 2  # 2: the graph takes the camera's bytes, uint8 [N, H, W, 3] RGB
METADATA_KEY = 'seg_kd_ros'  # ONNX metadata_props key; `<key>.json` in .pt2 archives
# The deploy graph's tensors (docs/model_file.md): camera bytes in, labels and confidence out.
INPUT_NAME = 'image'
OUTPUT_NAMES = ('labels', 'confidence')
REQUIRED_KEYS = ('format', 'model_name', 'classes', 'palette', 'mean', 'std', 'input_size',
                 'temperature', 'ignore_index')


class MetadataError(ValueError):
    """Model metadata or a classes file that does not follow docs/model_file.md."""


def _fail(source: str, key: str, problem: str):
    raise MetadataError(f"{source}: key '{key}' {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_palette(palette: Any, num_classes: int, source: str, key: str) -> list[list[int]]:
    if not isinstance(palette, list) or len(palette) != num_classes:
        count = len(palette) if isinstance(palette, list) else type(palette).__name__
        _fail(source, key, f'must list one [r, g, b] per class ({num_classes}), got {count}')
    for i, colour in enumerate(palette):
        if (not isinstance(colour, (list, tuple)) or len(colour) != 3
                or not all(_is_int(c) and 0 <= c <= 255 for c in colour)):
            _fail(source, key, f'entry {i} must be [r, g, b] integers 0-255, got {colour!r}')
    return [list(c) for c in palette]


def _check_names(names: Any, source: str, key: str) -> list[str]:
    if not isinstance(names, list) or not names:
        _fail(source, key, f'must be a non-empty list of class names, got {names!r}')
    if len(names) > 255:
        _fail(source, key, f'has {len(names)} classes; labels are uint8, so at most 255')
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            _fail(source, key, f'entry {i} must be a non-empty string, got {name!r}')
    return list(names)


def _check_triple(value: Any, source: str, key: str, positive: bool) -> tuple[float, ...]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(_is_number(v) for v in value)):
        _fail(source, key, f'must be 3 numbers (RGB), got {value!r}')
    if positive and not all(v > 0 for v in value):
        _fail(source, key, f'must be positive, got {value!r}')
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class ModelMetadata:
    """What the node needs to know about a model, read from the model file.

    Attributes:
        format: version of the model-file contract (2).
        model_name: registry name of the network.
        classes: class names; index = label value (trainId).
        palette: one (r, g, b) colour per class.
        mean: normalisation mean in [0, 1] units, RGB.
        std: normalisation standard deviation in [0, 1] units, RGB.
        input_size: network input (height, width).
        temperature: calibration temperature applied before the softmax.
        ignore_index: label value meaning "no class".
    """

    format: int
    model_name: str
    classes: list[str]
    palette: list[list[int]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]
    temperature: float
    ignore_index: int

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @classmethod
    def from_dict(cls, d: Any, source: str) -> 'ModelMetadata':
        """Validate a metadata object and build the dataclass; extra keys are ignored.

        Args:
            d: the decoded JSON object.
            source: where it came from (a file name), used in error messages.

        Raises:
            MetadataError: naming `source` and the missing or bad key.
        """
        if not isinstance(d, dict):
            raise MetadataError(f'{source}: metadata must be a JSON object, got '
                                f'{type(d).__name__}')
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise MetadataError(f"{source}: key '{missing[0]}' is missing from the metadata "
                                f"(required: {', '.join(REQUIRED_KEYS)})")
        fmt = d['format']
        if not _is_int(fmt) or fmt < 1:
            _fail(source, 'format', f'must be a positive integer, got {fmt!r}')
        if fmt < FORMAT_VERSION:
            _fail(source, 'format', f'is {fmt}: this model file takes normalised float input, '
                                    f'the node now gives the graph camera bytes (format '
                                    f'{FORMAT_VERSION}); re-export it with seg-kd export '
                                    f'(docs/model_file.md)')
        if fmt > FORMAT_VERSION:
            _fail(source, 'format', f'is {fmt}, newer than this node supports '
                                    f'({FORMAT_VERSION}); update seg_kd_ros')
        if not isinstance(d['model_name'], str) or not d['model_name']:
            _fail(source, 'model_name', f"must be a non-empty string, got {d['model_name']!r}")
        classes = _check_names(d['classes'], source, 'classes')
        palette = _check_palette(d['palette'], len(classes), source, 'palette')
        mean = _check_triple(d['mean'], source, 'mean', positive=False)
        std = _check_triple(d['std'], source, 'std', positive=True)
        size = d['input_size']
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(_is_int(v) and v > 0 for v in size)):
            _fail(source, 'input_size', f'must be [height, width] > 0 integers, got {size!r}')
        temperature = d['temperature']
        if not _is_number(temperature) or temperature <= 0:
            _fail(source, 'temperature', f'must be a positive number, got {temperature!r}')
        ignore = d['ignore_index']
        if not _is_int(ignore) or not 0 <= ignore <= 255:
            _fail(source, 'ignore_index', f'must be an integer 0-255, got {ignore!r}')
        if ignore < len(classes):
            _fail(source, 'ignore_index', f'{ignore} collides with a class id '
                                          f'(there are {len(classes)} classes)')
        return cls(format=fmt, model_name=d['model_name'], classes=classes, palette=palette,
                   mean=mean, std=std, input_size=(int(size[0]), int(size[1])),
                   temperature=float(temperature), ignore_index=ignore)

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> 'ModelMetadata':
        """Parse and validate the JSON text of a metadata object.

        Raises:
            MetadataError: invalid JSON or invalid content, naming `source`.
        """
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MetadataError(f'{source}: metadata is not valid JSON ({exc})') from None
        return cls.from_dict(d, source)

    def to_dict(self) -> dict:
        """The metadata object as docs/model_file.md writes it (JSON-ready)."""
        d = asdict(self)
        d['mean'], d['std'] = list(self.mean), list(self.std)
        d['input_size'] = list(self.input_size)
        return d

    def with_classes(self, names: list[str], palette: list[list[int]],
                     source: str) -> 'ModelMetadata':
        """A copy with class names and palette replaced (e.g. from a `classes_file`).

        Raises:
            MetadataError: the number of classes differs from the model's.
        """
        if len(names) != self.num_classes:
            raise MetadataError(f'{source}: has {len(names)} classes but the model '
                                f"'{self.model_name}' has {self.num_classes}")
        return replace(self, classes=list(names), palette=[list(c) for c in palette])


def load_classes_file(path: str | Path) -> tuple[list[str], list[list[int]]]:
    """Read class names and palette from a YAML file such as config/cityscapes_classes.yaml.

    The file holds `classes:`, a list of `{name: str, color: [r, g, b]}`, index = label value.

    Returns:
        (names, palette).

    Raises:
        MetadataError: a missing or unreadable file, or content that does not follow the format,
            naming the file and the bad entry.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding='utf-8')
    except OSError as exc:
        raise MetadataError(f'{source}: cannot read classes file ({exc.strerror})') from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MetadataError(f'{source}: not valid YAML ({exc})') from None
    if not isinstance(doc, dict) or not isinstance(doc.get('classes'), list):
        raise MetadataError(f"{source}: must contain a 'classes' list of {{name, color}} entries")
    names, colours = [], []
    for i, entry in enumerate(doc['classes']):
        if not isinstance(entry, dict) or set(entry) != {'name', 'color'}:
            raise MetadataError(f"{source}: classes[{i}] must have exactly the keys 'name' and "
                                f"'color', got {entry!r}")
        names.append(entry['name'])
        colours.append(entry['color'])
    names = _check_names(names, source, 'classes')
    palette = _check_palette(colours, len(names), source, 'color')
    return names, palette
