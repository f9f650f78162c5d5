"""Model metadata validation (docs/model_file.md) and classes files."""

import copy
import json
from pathlib import Path

import pytest
from tiny_models import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, tiny_metadata

from seg_kd_ros.model_metadata import MetadataError, ModelMetadata, load_classes_file

CLASSES_FILE = Path(__file__).resolve().parents[1] / 'config' / 'cityscapes_classes.yaml'


def test_valid_metadata_round_trips():
    d = tiny_metadata(64, 128, temperature=1.7)
    d['recipe'] = {'informative': True}  # extra keys are ignored
    meta = ModelMetadata.from_dict(d, 'model.onnx')
    assert meta.input_size == (64, 128) and meta.num_classes == 19
    assert meta.classes[18] == 'bicycle' and meta.palette[0] == [128, 64, 128]
    assert meta.temperature == pytest.approx(1.7) and meta.ignore_index == 255
    del d['recipe']
    assert meta.to_dict() == d
    assert ModelMetadata.from_json(json.dumps(meta.to_dict()), 'x') == meta


@pytest.mark.parametrize('key, value, match', [
    ('format', 3, "key 'format' is 3, newer than this node supports"),
    ('format', '2', "key 'format' must be a positive integer"),
    ('format', 1, "key 'format' is 1: this model file takes normalised float input, .* "
                  're-export it with seg-kd export'),
    ('model_name', '', "key 'model_name' must be a non-empty string"),
    ('classes', [], "key 'classes' must be a non-empty list"),
    ('classes', 'road', "key 'classes' must be a non-empty list"),
    ('classes', ['road', 3], "key 'classes' entry 1 must be a non-empty string"),
    ('classes', [f'c{i}' for i in range(256)], "key 'classes' has 256 classes"),
    ('palette', CITYSCAPES_PALETTE[:-1], r"key 'palette' must list one .* class \(19\), got 18"),
    ('palette', [[0, 0, 0]] * 18 + [[0, 0, 256]], "key 'palette' entry 18 must be"),
    ('palette', [[0, 0]] * 19, "key 'palette' entry 0 must be"),
    ('mean', [0.5, 0.5], "key 'mean' must be 3 numbers"),
    ('mean', [0.5, 0.5, float('nan')], "key 'mean' must be 3 numbers"),
    ('std', [0.2, 0.0, 0.2], "key 'std' must be positive"),
    ('std', [0.2, True, 0.2], "key 'std' must be 3 numbers"),
    ('input_size', [64], "key 'input_size' must be \\[height, width\\]"),
    ('input_size', [64, 0], "key 'input_size' must be"),
    ('input_size', [64.0, 128], "key 'input_size' must be"),
    ('temperature', 0, "key 'temperature' must be a positive number"),
    ('temperature', 'hot', "key 'temperature' must be a positive number"),
    ('ignore_index', 256, "key 'ignore_index' must be an integer 0-255"),
    ('ignore_index', 5, "key 'ignore_index' 5 collides with a class id"),
])
def test_bad_values_name_key_and_file(key, value, match):
    d = tiny_metadata(64, 128)
    d[key] = value
    with pytest.raises(MetadataError, match=match) as info:
        ModelMetadata.from_dict(d, 'runs/x/model.onnx')
    assert str(info.value).startswith('runs/x/model.onnx: ')


@pytest.mark.parametrize('key', ['format', 'classes', 'palette', 'mean', 'std', 'input_size',
                                 'temperature', 'ignore_index', 'model_name'])
def test_missing_key_is_named(key):
    d = tiny_metadata(64, 128)
    del d[key]
    with pytest.raises(MetadataError, match=f"m.onnx: key '{key}' is missing"):
        ModelMetadata.from_dict(d, 'm.onnx')


@pytest.mark.parametrize('text, match', [
    ('{"format": 1,', 'not valid JSON'),
    ('[1, 2]', 'must be a JSON object, got list'),
])
def test_bad_json(text, match):
    with pytest.raises(MetadataError, match=f'm.pt2: .*{match}'):
        ModelMetadata.from_json(text, 'm.pt2')


def test_metadata_error_is_value_error():
    assert issubclass(MetadataError, ValueError)


def test_shipped_classes_file_matches_cityscapes():
    names, palette = load_classes_file(CLASSES_FILE)
    assert names == CITYSCAPES_CLASSES
    assert palette == CITYSCAPES_PALETTE


def test_with_classes_overrides_and_checks_count():
    meta = ModelMetadata.from_dict(tiny_metadata(8, 8), 'm.onnx')
    names = [n.upper() for n in meta.classes]
    palette = [[1, 2, 3]] * 19
    other = meta.with_classes(names, palette, 'mine.yaml')
    assert other.classes == names and other.palette == palette and other.input_size == (8, 8)
    assert meta.classes[0] == 'road'  # the original is unchanged
    with pytest.raises(MetadataError, match='mine.yaml: has 2 classes but the model .* has 19'):
        meta.with_classes(['a', 'b'], [[0, 0, 0]] * 2, 'mine.yaml')


@pytest.mark.parametrize('content, match', [
    ('classes: [', 'not valid YAML'),
    ('names: []', "must contain a 'classes' list"),
    ('classes: {road: 1}', "must contain a 'classes' list"),
    ('classes:\n  - {name: road}', r'classes\[0\] must have exactly the keys'),
    ('classes:\n  - {name: road, color: [1, 2, 3], id: 4}', r'classes\[0\] must have exactly'),
    ('classes:\n  - {name: road, color: [1, 2]}', "key 'color' entry 0 must be"),
    ('classes:\n  - {name: yes, color: [1, 2, 3]}', "key 'classes' entry 0 must be a non-empty"),
    ('classes: []', "key 'classes' must be a non-empty list"),
])
def test_bad_classes_files(tmp_path, content, match):
    path = tmp_path / 'classes.yaml'
    path.write_text(content)
    with pytest.raises(MetadataError, match=match) as info:
        load_classes_file(path)
    assert str(path) in str(info.value)


def test_missing_classes_file(tmp_path):
    with pytest.raises(MetadataError, match='nope.yaml: cannot read classes file'):
        load_classes_file(tmp_path / 'nope.yaml')


def test_metadata_is_immutable():
    meta = ModelMetadata.from_dict(copy.deepcopy(tiny_metadata(8, 8)), 'm.onnx')
    with pytest.raises(AttributeError):
        meta.temperature = 2.0
