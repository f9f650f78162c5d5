"""A foreign segmentation ONNX into the model file (`seg-kd export --onnx`), then the real node.

The foreign model is built here with onnx.helper, knowing nothing of this project: float NCHW
input normalised with its own mean/std, 20 logits (19 classes + void) at half the input
resolution, and an auxiliary output. Wrapped by the CLI, it must load in the node's validator and
backend, and the node, run as its own process over DDS, must publish labels bit-exact with ONNX
Runtime: on the wrapped file, and on the original graph followed by the head's steps (keep 19
channels, bilinear upsampling, argmax) computed here independently.
"""

import json
import re
import stat
import subprocess
import sys

from node_harness import NodeProcess, Probe, node_args, unique_namespace
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
import pytest
from sensor_msgs.msg import Image

from seg_kd_ros.backends import create_backend
from seg_kd_ros.image_conversion import imgmsg_to_numpy
from seg_kd_ros.model_metadata import METADATA_KEY, ModelMetadata
from seg_kd_train import cli

HEIGHT, WIDTH = 64, 96
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def make_foreign_onnx(path, classes: int = 20, seed: int = 0):
    """Input `input` float [1, 3, H, W]; outputs `out_logits` [1, 20, H/2, W/2] and `aux`."""
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.normal(0, 0.5, (16, 3, 3, 3)).astype(np.float32), 'w1'),
               numpy_helper.from_array(rng.normal(0, 0.5, (classes, 16, 1, 1)).astype(
                   np.float32), 'w2'),
               numpy_helper.from_array(rng.normal(0, 0.3, classes).astype(np.float32), 'b2')]
    nodes = [helper.make_node('Conv', ['input', 'w1'], ['c1'], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node('Relu', ['c1'], ['r1']),
             helper.make_node('Conv', ['r1', 'w2', 'b2'], ['out_logits']),
             helper.make_node('ReduceMean', ['r1'], ['aux'], axes=[1], keepdims=1)]
    half = (HEIGHT // 2, WIDTH // 2)
    graph = helper.make_graph(
        nodes, 'foreign_segmenter',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, HEIGHT, WIDTH])],
        [helper.make_tensor_value_info('out_logits', TensorProto.FLOAT, [1, classes, *half]),
         helper.make_tensor_value_info('aux', TensorProto.FLOAT, [1, 1, *half])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def expected_labels(foreign, frame: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the original graph, then the head's steps done here, independently."""
    x = frame[None].transpose(0, 3, 1, 2).astype(np.float32)
    mean255 = (255.0 * np.asarray(MEAN)).astype(np.float32).reshape(1, 3, 1, 1)
    scale = (1.0 / (255.0 * np.asarray(STD))).astype(np.float32).reshape(1, 3, 1, 1)
    session = ort.InferenceSession(str(foreign), providers=['CPUExecutionProvider'])
    logits = session.run(['out_logits'], {'input': (x - mean255) * scale})[0][:, :19]
    up = helper.make_graph(
        [helper.make_node('Resize', ['z', '', '', 'sizes'], ['y'], mode='linear',
                          coordinate_transformation_mode='half_pixel')], 'up',
        [helper.make_tensor_value_info('z', TensorProto.FLOAT, list(logits.shape))],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([1, 19, HEIGHT, WIDTH], np.int64), 'sizes')])
    model = helper.make_model(up, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    upsampled = ort.InferenceSession(model.SerializeToString(),
                                     providers=['CPUExecutionProvider']).run(
        None, {'z': np.ascontiguousarray(logits)})[0]
    return upsampled.argmax(axis=1)[0].astype(np.uint8)


def export_args(foreign, out, *extra):
    return ['export', '--onnx', str(foreign), '--out', str(out), '--logits-output', 'out_logits',
            '--classes', 'cityscapes', '--mean', *map(str, MEAN), '--std', *map(str, STD),
            '--input-size', f'{HEIGHT}x{WIDTH}', '--keep-channels', '0-18', *extra]


@pytest.fixture(scope='module')
def wrapped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('foreign')
    foreign = make_foreign_onnx(tmp / 'foreign.onnx')
    out = tmp / 'wrapped.onnx'
    assert cli.main(export_args(foreign, out)) == 0
    return foreign, out


def test_wrapped_file_follows_the_contract(wrapped):
    foreign, out = wrapped
    model = onnx.load(str(out))
    image = model.graph.input[0]
    assert image.name == 'image' and image.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_value for d in image.type.tensor_type.shape.dim] == [1, HEIGHT, WIDTH, 3]
    assert [o.name for o in model.graph.output] == ['labels', 'confidence']
    meta = ModelMetadata.from_json(
        next(p.value for p in model.metadata_props if p.key == METADATA_KEY), str(out))
    assert meta.num_classes == 19 and meta.classes[0] == 'road'
    assert meta.mean == MEAN and meta.std == STD and meta.input_size == (HEIGHT, WIDTH)
    assert not any(n.op_type == 'ReduceMean' for n in model.graph.node)  # aux output pruned
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(foreign.stat().st_mode)


def test_command_prints_parity_and_imports_no_torch(tmp_path):
    foreign = make_foreign_onnx(tmp_path / 'foreign.onnx', seed=1)
    code = ('import sys; from seg_kd_train.cli import main; rc = main(sys.argv[1:]); '
            "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    done = subprocess.run([sys.executable, '-c', code,
                           *export_args(foreign, tmp_path / 'w.onnx')],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'labels equal to the argmax of the kept upsampled logits' in done.stdout
    assert '100.0000 %' in done.stdout and 'no torch' in done.stdout
    assert json.loads(done.stdout.splitlines()[-2])['labels_equal'] == 1.0


@pytest.mark.parametrize('change, message', [
    (['--logits-output', 'nope'], "no output named 'nope'; its outputs are"),
    (['--keep-channels', '0-19', '--classes', 'cityscapes'], 'keeping 20 logit channels for 19'),
    (['--keep-channels', '5-3'], 'channels must be like 0-18'),
    (['--input-size', '64x128'], "input 'input' is .* but the input size is"),
])
def test_bad_options_give_one_line(tmp_path, capsys, change, message):
    foreign = make_foreign_onnx(tmp_path / 'foreign.onnx')
    args = export_args(foreign, tmp_path / 'w.onnx')
    for i in range(0, len(change), 2):
        args[args.index(change[i]) + 1] = change[i + 1]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('seg-kd export: error:'), err
    assert re.search(message, err), err
    assert not (tmp_path / 'w.onnx').exists()


def test_missing_normalisation_and_unreadable_file(tmp_path, capsys):
    foreign = make_foreign_onnx(tmp_path / 'foreign.onnx')
    args = export_args(foreign, tmp_path / 'w.onnx')
    no_mean = args[:args.index('--mean')] + args[args.index('--std'):]
    assert cli.main(no_mean) == 2
    assert '--onnx needs --mean R G B and --std R G B' in capsys.readouterr().err
    (tmp_path / 'broken.onnx').write_bytes(b'not an onnx file')
    assert cli.main(export_args(tmp_path / 'broken.onnx', tmp_path / 'w.onnx')) == 2
    assert 'broken.onnx: not a readable ONNX model' in capsys.readouterr().err


def test_node_publishes_labels_bit_exact_with_onnxruntime(wrapped, tmp_path):
    foreign, out = wrapped
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    frame = np.ascontiguousarray(blocks.repeat(8, 0).repeat(8, 1))
    with create_backend(out) as backend:  # the node's validator and loader
        assert backend.metadata.num_classes == 19
    session = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    direct = session.run(['labels'], {'image': frame[None]})[0][0]
    independent = expected_labels(foreign, frame)
    np.testing.assert_array_equal(direct, independent)
    assert len(np.unique(independent)) > 3

    namespace = unique_namespace('foreign')
    node = NodeProcess(node_args(out, namespace, {'confidence_threshold': 0.0}),
                       tmp_path / 'node.log')
    probe = Probe('foreign_probe')
    try:
        node.wait_ready()
        base = f'{namespace}/segmenter'
        probe.subscribe(f'{base}/labels', Image)
        publisher = probe.publisher(f'{namespace}/image', Image, reliable=False)
        probe.wait_matched(publisher, [f'{base}/labels'])
        msg = probe.image_msg(frame, 'rgb8')
        labels_msg = probe.request(publisher, msg, f'{base}/labels')
        assert labels_msg is not None, node.output()
        assert (labels_msg.width, labels_msg.height) == (WIDTH, HEIGHT)
        np.testing.assert_array_equal(imgmsg_to_numpy(labels_msg), independent)
    finally:
        probe.close()
        assert node.stop() == 0, node.output()
