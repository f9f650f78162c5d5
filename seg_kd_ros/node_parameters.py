"""The segmenter node's parameters: declarations with descriptors, and their validation.

Start-up-only parameters (model, backend, device, transport, QoS, classes file) are read-only;
the others can be changed at runtime with `ros2 param set` and are validated the same way.
"""

from dataclasses import dataclass
import re
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from seg_kd_ros.backends import BACKENDS, DEVICE_PATTERN

TRANSPORTS = ('raw', 'compressed')
RESOLUTIONS = ('input', 'network')
CONFIDENCE_ENCODINGS = ('mono8', '32FC1')
RELIABILITIES = ('auto', 'best_effort', 'reliable')
# 8K UHD (7680 x 4320): a generous bound on a camera frame; anything larger is rejected as a
# malformed or hostile header before a single byte is converted.
DEFAULT_MAX_INPUT_PIXELS = 7680 * 4320


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names it and the allowed values."""


@dataclass
class NodeConfig:
    """The node's parameter values, validated."""

    model_path: str
    backend: str
    device: str
    input_transport: str
    output_resolution: str
    confidence_threshold: float
    confidence_encoding: str
    classes_file: str
    publish_overlay: bool
    overlay_alpha: float
    qos_reliability: str
    max_input_pixels: int


def _range(low: float, high: float) -> list:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


# name -> (default, description, read_only, extra descriptor fields)
PARAMETERS: dict[str, tuple[Any, str, bool, dict]] = {
    'model_path': (
        '', 'Model file: .onnx (ONNX Runtime), .engine (TensorRT) or .pt2 (PyTorch). Required.',
        True, {}),
    'backend': (
        'auto', 'Inference backend: ' + ' | '.join(BACKENDS) + ' (auto picks by file extension).',
        True, {'additional_constraints': 'one of ' + ', '.join(BACKENDS)}),
    'device': (
        'cpu', 'Inference device: cpu | cuda | cuda:N.', True,
        {'additional_constraints': 'cpu, cuda or cuda:N'}),
    'input_transport': (
        'raw', 'raw subscribes `image` (sensor_msgs/Image); compressed subscribes '
        '`image/compressed` (sensor_msgs/CompressedImage, jpeg/png).', True,
        {'additional_constraints': 'one of ' + ', '.join(TRANSPORTS)}),
    'output_resolution': (
        'input', 'Resolution of labels/confidence/overlay: input (labels nearest-exact, '
        'confidence bilinear) or network (the model input size).', False,
        {'additional_constraints': 'one of ' + ', '.join(RESOLUTIONS)}),
    'confidence_threshold': (
        0.0, "Pixels whose confidence is below this get the model's ignore_index (255 by "
        'default; 0 disables).', False,
        {'floating_point_range': _range(0.0, 1.0)}),
    'confidence_encoding': (
        'mono8', 'Encoding of ~/confidence: mono8 (0-255) or 32FC1 (0-1).', False,
        {'additional_constraints': 'one of ' + ', '.join(CONFIDENCE_ENCODINGS)}),
    'classes_file': (
        '', 'Optional YAML with class names and palette, overriding the model metadata.',
        True, {}),
    'publish_overlay': (
        True, 'Publish ~/overlay (computed only while someone subscribes).', False, {}),
    'overlay_alpha': (
        0.5, 'Weight of the palette colour in ~/overlay.', False,
        {'floating_point_range': _range(0.0, 1.0)}),
    'qos_reliability': (
        'auto', 'Reliability of the image subscription (sensor-data QoS otherwise): auto '
        '(match the camera publisher, found in the graph) | best_effort | reliable.', True,
        {'additional_constraints': 'one of ' + ', '.join(RELIABILITIES)}),
    'max_input_pixels': (
        DEFAULT_MAX_INPUT_PIXELS, 'Frames with width x height above this are rejected (counted '
        'in /diagnostics) before conversion; default 8K UHD.', False,
        {'integer_range': [IntegerRange(from_value=1, to_value=2**31 - 1, step=0)]}),
}

_TYPE_NAMES = {bool: 'a bool (true/false)', int: 'an integer', float: 'a double (e.g. 0.5)',
               str: 'a string'}


def declare_parameters(node: Node) -> None:
    """Declare every node parameter with its descriptor.

    Raises:
        ParameterError: a value given on the command line or in a params file has the wrong type
            or lies outside its range.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
    for name, (default, description, read_only, extra) in PARAMETERS.items():
        descriptor = ParameterDescriptor(name=name, description=description,
                                         read_only=read_only, **extra)
        try:
            node.declare_parameter(name, default, descriptor)
        except InvalidParameterTypeException as exc:
            raise ParameterError(
                f'parameter {name!r} must be {_TYPE_NAMES[type(default)]}: {exc}') from None
        except InvalidParameterValueException as exc:
            found = re.search(r'value \((.*?)\) for', str(exc.args[0]) if exc.args else '')
            value = found.group(1) if found else 'the given value'
            raise ParameterError(f'parameter {name!r} is {value}, out of range; allowed: '
                                 f'{_allowed(name)}') from None


def _allowed(name: str) -> str:
    extra = PARAMETERS[name][3]
    if 'floating_point_range' in extra:
        r = extra['floating_point_range'][0]
        return f'{r.from_value} to {r.to_value}'
    if 'integer_range' in extra:
        r = extra['integer_range'][0]
        return f'{r.from_value} to {r.to_value}'
    return extra.get('additional_constraints', 'see the README')


def validate(name: str, value: Any) -> Any:
    """Check one parameter value and return it, normalised.

    Raises:
        ParameterError: naming the parameter, the value and the allowed values.
    """
    choices = {'backend': BACKENDS, 'input_transport': TRANSPORTS,
               'output_resolution': RESOLUTIONS, 'confidence_encoding': CONFIDENCE_ENCODINGS,
               'qos_reliability': RELIABILITIES}
    if name in choices and value not in choices[name]:
        raise ParameterError(f'parameter {name!r} is {value!r}; allowed: '
                             + ', '.join(choices[name]))
    if name == 'device' and not DEVICE_PATTERN.match(value):
        raise ParameterError(f'parameter {name!r} is {value!r}; allowed: cpu, cuda, cuda:N')
    if name == 'model_path' and not value:
        raise ParameterError("parameter 'model_path' is empty; give the model file "
                             '(.onnx, .engine or .pt2), e.g. -p model_path:=/path/model.onnx')
    if name in ('confidence_threshold', 'overlay_alpha') and not 0.0 <= value <= 1.0:
        raise ParameterError(f'parameter {name!r} is {value}; allowed: 0.0 to 1.0')
    if name == 'max_input_pixels' and value < 1:
        raise ParameterError(f'parameter {name!r} is {value}; allowed: a positive integer')
    return value


def read_config(node: Node) -> NodeConfig:
    """Read and validate every declared parameter.

    Raises:
        ParameterError: the first invalid value.
    """
    values = {name: validate(name, node.get_parameter(name).value) for name in PARAMETERS}
    return NodeConfig(**values)
