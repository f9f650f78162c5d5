"""How frames reach the node as users run it: no DDS profile set anywhere, QoS chosen by the node.

- `qos_reliability: auto` (the default) waits for the camera's publisher and matches its
  reliability; the outputs and the latched class map exist before that.
- Camera-sized frames (1024x512 rgb8, 1.5 MiB: more than Fast DDS's default 512 KiB shared-memory
  segment) from a reliable publisher with no profile all arrive.
- A stamp far from the node's clock is counted and left out of the latency percentiles.
- A node that cannot start leaves no Fast DDS shared-memory file behind.
"""

import os
from pathlib import Path
import re
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import (
    WAIT_TIMEOUT,
    NodeProcess,
    Probe,
    make_image,
    node_args,
    run_to_exit,
    unique_namespace,
)
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tiny_models import make_tiny_onnx

from seg_kd_ros.dds_profile import PROFILE_VARIABLES

pytestmark = pytest.mark.slow
FRAMES = 15
SEGMENT = re.compile(r'fast(dds|rtps)_[0-9a-f]{16}(_el)?')


@pytest.fixture(scope='module')
def running(tmp_path_factory):
    """A node with the default parameters, started before any camera exists."""
    assert not any(os.environ.get(v) for v in PROFILE_VARIABLES), 'a DDS profile is set'
    tmp = tmp_path_factory.mktemp('transport')
    model = make_tiny_onnx(tmp / 'tiny.onnx', 64, 128)
    namespace = unique_namespace('transport')
    node = NodeProcess(node_args(model, namespace), tmp / 'node.log')
    probe = Probe()
    try:
        node.wait_ready()
        yield node, probe, namespace
    finally:
        probe.close()
        assert node.stop() == 0, node.output()


def test_outputs_exist_before_the_camera_and_auto_waits_for_it(running):
    node, probe, namespace = running
    base = f'{namespace}/segmenter'
    probe.subscribe('/diagnostics', DiagnosticArray)
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline and not all(
            probe.node.count_publishers(f'{base}/{t}') for t in ('labels', 'class_names')):
        time.sleep(0.1)
    assert probe.node.count_publishers(f'{base}/labels') == 1
    assert probe.node.count_publishers(f'{base}/class_names') == 1
    assert probe.node.count_subscribers(f'{namespace}/image') == 0  # no camera yet: no choice
    assert 'waiting for a publisher' in node.output()


def test_camera_sized_frames_from_a_reliable_publisher_all_arrive(running):
    node, probe, namespace = running
    base = f'{namespace}/segmenter'
    probe.subscribe(f'{base}/labels', Image, depth=FRAMES)
    publisher = probe.publisher(f'{namespace}/image', Image, reliable=True)
    probe.wait_matched(publisher, [f'{base}/labels'])
    assert 'subscribing reliable' in node.output()
    rgb = make_image(512, 1024)
    answered = 0
    for _ in range(FRAMES):  # one at a time: every frame must arrive, none republished
        msg = probe.image_msg(rgb)
        publisher.publish(msg)
        got = probe.wait_for(f'{base}/labels', lambda m, s=msg.header.stamp: m.header.stamp == s)
        answered += got is not None
        assert got is None or (got.width, got.height) == (1024, 512)
    assert answered == FRAMES


def test_a_stamp_far_from_the_clock_is_counted_not_measured(running):
    node, probe, namespace = running
    base = f'{namespace}/segmenter'
    probe.subscribe('/diagnostics', DiagnosticArray)
    probe.subscribe(f'{base}/labels', Image)
    publisher = probe.publisher(f'{namespace}/image', Image, reliable=True)
    probe.wait_matched(publisher, [f'{base}/labels'])
    rgb = make_image(64, 128)
    for stamp in (Time(sec=1000), Time(sec=2**31 - 10)):  # a replayed bag, a clock far ahead
        msg = probe.image_msg(rgb)
        msg.header = Header(stamp=stamp, frame_id='camera')
        probe.request(publisher, msg, f'{base}/labels')
    probe.request(publisher, probe.image_msg(rgb), f'{base}/labels')  # a good stamp
    values = probe.diagnostics(
        base, lambda v: int(v['stamps_out_of_range']) >= 2 and v['latency_e2e_p99_ms'] != 'nan')
    assert float(values['latency_e2e_p99_ms']) < 10000.0
    assert node.output().count('left out of the latency') == 1  # warned once


def _mapped_shm_files() -> set[str]:
    """/dev/shm files some live process has mapped or open."""
    used = set()
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/maps') as maps:
                used.update(line.split()[-1] for line in maps if '/dev/shm/' in line)
            for fd in os.listdir(f'/proc/{pid}/fd'):
                target = os.readlink(f'/proc/{pid}/fd/{fd}')
                if target.startswith('/dev/shm/'):
                    used.add(target)
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return used


def test_a_failed_start_leaves_no_shared_memory_behind(tmp_path):
    shm = Path('/dev/shm')
    before = set(map(str, shm.iterdir()))
    code, out = run_to_exit(node_args(tmp_path / 'missing.onnx', unique_namespace('noshm')))
    assert code != 0 and 'cannot start' in out
    # A participant's segment is `fastdds_<16 hex>` (Kilted) or `fastrtps_<16 hex>` (Jazzy), and
    # its `_el` lock; port files are shared by every process on a port, so they are left out. A
    # segment that another process creates meanwhile is mapped by it.
    leaked = set(map(str, shm.iterdir())) - before - _mapped_shm_files()
    assert not {f for f in leaked if SEGMENT.fullmatch(Path(f).name)}, leaked
