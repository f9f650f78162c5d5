"""Start-up failures: a model or parameter the node cannot run with stops it with one clear line.

Each case runs `segmenter_node --ros-args ...` as a process (all cases in parallel) and checks
the exit status, that exactly one line explains the failure and names the culprit, and that no
Python traceback reaches the user.
"""

import subprocess

from node_harness import START_TIMEOUT, NodeProcess, Probe, make_image, node_args, node_env
import numpy as np
import pytest
from sensor_msgs.msg import Image
from tiny_models import make_tiny_onnx
from vision_msgs.msg import LabelInfo

from seg_kd_ros.image_conversion import imgmsg_to_numpy


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('node_startup')
    good = make_tiny_onnx(tmp / 'tiny.onnx', 16, 32)
    truncated = tmp / 'truncated.onnx'
    truncated.write_bytes(good.read_bytes()[:200])
    corrupt = tmp / 'corrupt.onnx'
    corrupt.write_bytes(b'this is not a protobuf \x00\xff' * 64)
    no_meta = make_tiny_onnx(tmp / 'no_metadata.onnx', 16, 32, metadata={})
    model_dir = tmp / 'models.onnx'  # a directory: exists but cannot be read as a file
    model_dir.mkdir()
    return {'tmp': tmp, 'good': good, 'truncated': truncated, 'corrupt': corrupt,
            'no_meta': no_meta, 'dir': model_dir, 'missing': tmp / 'missing.onnx'}


# case -> (model key, extra parameters, words the one error line must contain)
CASES = {
    'missing model': ('missing', {}, ['missing.onnx', 'does not exist']),
    'unreadable model (a directory)': ('dir', {}, ['models.onnx', 'directory']),
    'truncated model': ('truncated', {}, ['truncated.onnx']),
    'corrupt model': ('corrupt', {}, ['corrupt.onnx']),
    'model without metadata': ('no_meta', {}, ['no_metadata.onnx', 'seg_kd_ros']),
    'unknown backend': ('good', {'backend': 'caffe'}, ['backend', 'caffe', 'onnxruntime']),
    'bad device': ('good', {'device': 'gpu0'}, ['device', 'gpu0', 'cuda:N']),
    'threshold out of range': ('good', {'confidence_threshold': 1.5}, ['confidence_threshold',
                                                                       '1.5', '0.0 to 1.0']),
    'threshold of the wrong type': ('good', {'confidence_threshold': 'high'},
                                    ['confidence_threshold', 'double']),
    'bad output_resolution': ('good', {'output_resolution': 'full'},
                              ['output_resolution', 'full', 'input, network']),
    'bad confidence_encoding': ('good', {'confidence_encoding': '16UC1'},
                                ['confidence_encoding', '16UC1', 'mono8, 32FC1']),
    'bad input_transport': ('good', {'input_transport': 'theora'},
                            ['input_transport', 'theora', 'raw, compressed']),
    'missing classes file': ('good', {'classes_file': '/nonexistent/classes.yaml'},
                             ['classes_file', '/nonexistent/classes.yaml']),
    'classes file with another class count': ('good', {'classes_file': 'TWO_CLASSES'},
                                              ['classes_file', '2 classes', '19']),
}


def write_classes(path, count):
    lines = ['classes:'] + [f'  - {{name: thing{i}, color: [{i}, {2 * i}, {3 * i}]}}'
                            for i in range(count)]
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_start_up_failures_exit_non_zero_with_one_clear_line(models):
    procs = {}
    two = write_classes(models['tmp'] / 'two_classes.yaml', 2)
    for case, (key, params, _) in CASES.items():
        params = {k: (two if v == 'TWO_CLASSES' else v) for k, v in params.items()}
        args = node_args(models[key], params=params)
        procs[case] = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=node_env())
    failures = []
    for case, proc in procs.items():
        output, _ = proc.communicate(timeout=START_TIMEOUT)
        words = CASES[case][2]
        lines = [line for line in output.splitlines() if 'cannot start' in line]
        if proc.returncode == 0:
            failures.append(f'{case}: exit code 0')
        elif len(lines) != 1 or not all(w in lines[0] for w in words):
            failures.append(f'{case}: expected one line with {words}, got:\n{output}')
        elif 'Traceback' in output:
            failures.append(f'{case}: traceback in the output:\n{output}')
    assert not failures, '\n'.join(failures)


def test_empty_model_path_is_a_clear_error(models):
    args = node_args('x')[:1] + ['--ros-args', '-p', 'publish_overlay:=false']
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=node_env(), timeout=START_TIMEOUT)
    assert done.returncode != 0
    assert "parameter 'model_path' is empty" in done.stdout
    assert 'Traceback' not in done.stdout


def test_unparsable_ros_arguments_are_a_clear_error(models):
    args = node_args(models['good']) + ['-p', 'model_path:=']
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=node_env(), timeout=START_TIMEOUT)
    assert done.returncode != 0
    assert 'cannot start: invalid command-line arguments' in done.stdout
    assert 'Traceback' not in done.stdout


def test_params_file_and_classes_file_are_read_and_sigint_exits_cleanly(models):
    classes = write_classes(models['tmp'] / 'classes19.yaml', 19)
    params = models['tmp'] / 'params.yaml'
    params.write_text(f"/**:\n  ros__parameters:\n    model_path: '{models['good']}'\n"
                      f"    classes_file: '{classes}'\n    overlay_alpha: 1.0\n")
    args = node_args(models['good'])[:1] + ['--ros-args', '--params-file', str(params),
                                            '-r', '__ns:=/params_file_check']
    node = NodeProcess(args, models['tmp'] / 'params_node.log')
    probe = Probe()
    try:
        node.wait_ready()
        base = '/params_file_check/segmenter'
        probe.subscribe(f'{base}/class_names', LabelInfo, latched=True)
        msg = probe.wait_for(f'{base}/class_names')
        assert msg is not None, node.output()
        assert [(c.class_id, c.class_name) for c in msg.class_map] == [
            (i, f'thing{i}') for i in range(19)]
        # LabelInfo has no colours: the file's palette shows in the overlay (alpha 1: colour only)
        for output in ('labels', 'overlay'):
            probe.subscribe(f'{base}/{output}', Image)
        publisher = probe.publisher('/params_file_check/image', Image)
        probe.wait_matched(publisher, [f'{base}/labels', f'{base}/overlay'])
        frame = probe.image_msg(make_image(16, 32))
        overlay = probe.request(publisher, frame, f'{base}/overlay')
        labels = probe.wait_for(f'{base}/labels', lambda m: m.header.stamp == frame.header.stamp)
        assert labels is not None, node.output()
        palette = np.array([[i, 2 * i, 3 * i] for i in range(19)], np.uint8)
        np.testing.assert_array_equal(imgmsg_to_numpy(overlay),
                                      palette[imgmsg_to_numpy(labels)])
    finally:
        probe.close()
        code = node.stop()
    assert code == 0, node.output()
    assert 'Traceback' not in node.output()
