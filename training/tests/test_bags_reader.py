"""Reading bags that are not clean: malformed frames are skipped and counted, a missing topic or a
damaged file gives an error that says what is wrong (no node needed for these)."""

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from seg_kd_train.bags.reader import BagError, BagFrames
from seg_kd_train.cli import main as seg_kd

H, W = 24, 32
TS = get_typestore(Stores.ROS2_JAZZY)


def image_msg(ns: int, rgb: np.ndarray, encoding: str = 'rgb8', step: int | None = None,
              cut: int = 0):
    """An Image message; `step` overrides the row size, `cut` drops bytes from the data's end."""
    image_cls = TS.types['sensor_msgs/msg/Image']
    header = TS.types['std_msgs/msg/Header'](
        stamp=TS.types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id='cam')
    data = rgb.reshape(-1)
    data = data[:len(data) - cut] if cut else data
    channels = 1 if rgb.ndim == 2 else 3
    return image_cls(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                 is_bigendian=0, step=step or rgb.shape[1] * channels, data=data)


def write_robot_bag(path: Path, frames: list, topic: str = '/front/image',
                    labels: list | None = None, storage=StoragePlugin.MCAP) -> None:
    """A bag as a robot records it: one image topic (plus optional ground truth), any name."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        cam = writer.add_connection(topic, 'sensor_msgs/msg/Image', typestore=TS)
        gt = (writer.add_connection('/camera/labels_gt', 'sensor_msgs/msg/Image', typestore=TS)
              if labels else None)
        for i, msg in enumerate(frames):
            ns = 10**9 + i * 100_000_000
            writer.write(cam, ns, TS.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
            if gt is not None and labels[i] is not None:
                writer.write(gt, ns, TS.serialize_cdr(labels[i], 'sensor_msgs/msg/Image'))


def malformed_frames(rng) -> tuple[list, list, list[int]]:
    """Six frames with labels; frame 1 has a too small step, frame 3 too short data, frame 4 a
    label of the wrong size. Returns (frames, labels, indices of the good frames)."""
    frames, labels = [], []
    for i in range(6):
        ns = 10**9 + i * 100_000_000
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        label = rng.integers(0, 19, (H, W), dtype=np.uint8)
        frames.append(image_msg(ns, rgb, step=W * 3 - 1 if i == 1 else None,
                                cut=10 if i == 3 else 0))
        labels.append(image_msg(ns, label[:-1] if i == 4 else label, encoding='mono8'))
    return frames, labels, [0, 2, 5]


def test_malformed_frames_are_skipped_and_counted(tmp_path):
    frames, labels, good = malformed_frames(np.random.default_rng(0))
    bag = tmp_path / 'bag'
    write_robot_bag(bag, frames, labels=labels)
    with BagFrames(bag, image_topic='/front/image') as reader:
        got = list(reader.frames())
        stats = reader.stats
        assert reader.has_ground_truth and not reader.compressed
    assert [f.index for f in got] == good
    assert stats.malformed == 3 and stats.error is None
    text = ' | '.join(stats.reasons)
    assert 'step' in text and 'data has' in text and 'ground truth' in text, text
    for frame in got:
        np.testing.assert_array_equal(frame.label, labels[frame.index].data.reshape(H, W))
        np.testing.assert_array_equal(frame.rgb, frames[frame.index].data.reshape(H, W, 3))


def test_repeated_zero_stamps_get_unique_ones(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    bag = tmp_path / 'bag'
    write_robot_bag(bag, [image_msg(0, rgb) for _ in range(4)])
    with BagFrames(bag) as reader:  # the only image topic is picked
        stamps = [f.stamp_ns for f in reader.frames()]
        assert reader.image_conn.topic == '/front/image'
    assert len(set(stamps)) == 4 and 0 not in stamps


def test_missing_topic_lists_the_bag_topics(tmp_path, capsys):
    bag = tmp_path / 'bag'
    write_robot_bag(bag, [image_msg(10**9, np.zeros((H, W, 3), np.uint8))])
    with pytest.raises(BagError, match=r'/camera/nope.*not in the bag.*/front/image '
                                       r'\[sensor_msgs/msg/Image\]'):
        BagFrames(bag, image_topic='/camera/nope')
    # the CLI says it too, before it looks for a node
    assert seg_kd(['bag-eval', '--bag', str(bag), '--out', str(tmp_path / 'r'),
                   '--image-topic', '/camera/nope']) == 2
    assert '/front/image' in capsys.readouterr().err
    assert not (tmp_path / 'r').exists()


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_truncated_bag_is_a_clear_error(tmp_path, capsys, storage):
    rng = np.random.default_rng(1)
    bag = tmp_path / 'bag'
    write_robot_bag(bag, [image_msg(10**9 + i, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
                          for i in range(20)], storage=storage)
    (data_file,) = [p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3')]
    data_file.write_bytes(data_file.read_bytes()[:data_file.stat().st_size // 2])
    with pytest.raises(BagError, match='truncated or corrupt'):
        with BagFrames(bag) as reader:
            list(reader.frames())
    assert seg_kd(['bag-eval', '--bag', str(bag), '--out', str(tmp_path / 'r')]) == 2
    err = capsys.readouterr().err
    assert str(bag) in err and 'truncated or corrupt' in err


def test_not_a_bag(tmp_path):
    with pytest.raises(BagError, match='no such bag'):
        BagFrames(tmp_path / 'absent')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='cannot open'):
        BagFrames(tmp_path / 'empty')
