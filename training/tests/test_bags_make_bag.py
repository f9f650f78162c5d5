"""`seg-kd make-bag` writes bags that rosbags reads back on its own: types, counts, stamps, pixels.

The bag is read with `rosbags.rosbag2.Reader` and a stock typestore, never with our reader, and the
pixels are compared with the arrays this test wrote into the dataset files.
"""

from pathlib import Path
import shutil

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
import yaml

from seg_kd_train.cli import main as seg_kd
from seg_kd_train.data.cityscapes_labels import train_ids_to_label_ids

CONDITIONS = ('fog', 'night')
PER_CONDITION = 3
HEIGHT, WIDTH = 40, 56
START_NS = 1_700_000_000 * 10**9


def write_acdc(root: Path, split: str = 'val', seed: int = 0) -> list[dict]:
    """A tiny dataset in the ACDC layout; returns the samples in the loader's (sorted) order."""
    rng = np.random.default_rng(seed)
    samples = []
    for cond in CONDITIONS:
        for i in range(PER_CONDITION):
            y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
            base = np.stack([x * 4, y * 5, (x + y) * 2 + 40 * i], axis=-1)
            image = np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
            label = rng.integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8)
            label[:4] = 255
            name = f'{cond}_seq_{i:06d}'
            img_dir = root / 'rgb_anon' / cond / split / f'{cond}_seq'
            gt_dir = root / 'gt' / cond / split / f'{cond}_seq'
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img_dir / f'{name}_rgb_anon.png'),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(gt_dir / f'{name}_gt_labelTrainIds.png'), label)
            samples.append({'image': image, 'label': label, 'condition': cond})
    return samples


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp('acdc')
    return root, write_acdc(root)


def read_back(bag: Path) -> dict:
    """Every message of the bag, deserialised with the stock Kilted typestore, by topic."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    out = {'types': {}, 'messages': {}, 'counts': {}}
    with Reader(bag) as reader:
        for conn in reader.connections:
            out['types'][conn.topic] = conn.msgtype
            out['counts'][conn.topic] = conn.msgcount
            assert conn.digest == typestore.hash_rihs01(conn.msgtype)
            assert conn.msgdef.data, f'{conn.topic} has no message definition'
        for conn, ns, raw in reader.messages():
            msg = typestore.deserialize_cdr(raw, conn.msgtype)
            out['messages'].setdefault(conn.topic, []).append((ns, msg))
    return out


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


@pytest.mark.parametrize('storage, compressed', [('mcap', None), ('sqlite3', 'png'),
                                                 ('mcap', 'jpeg')])
def test_make_bag_reads_back(dataset, tmp_path, storage, compressed):
    root, samples = dataset
    bag = tmp_path / 'bag'
    argv = ['make-bag', '--data', str(root), '--dataset', 'acdc', '--split', 'val',
            '--conditions', ','.join(CONDITIONS), '--out', str(bag), '--format', storage,
            '--rate', '5']
    argv += ['--compressed', compressed] if compressed else []
    assert seg_kd(argv) == 0

    suffix = '.mcap' if storage == 'mcap' else '.db3'
    assert list(bag.glob('*' + suffix)), f'no {suffix} file in {list(bag.iterdir())}'
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['storage_identifier'] == storage
    for topic in meta['topics_with_message_count']:
        qos = topic['topic_metadata']['offered_qos_profiles']
        assert qos and qos[0]['reliability'] == 'reliable', topic

    got = read_back(bag)
    cam = '/camera/image_raw' + ('/compressed' if compressed else '')
    cam_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    n = len(samples)
    assert got['types'] == {cam: cam_type, '/camera/labels_gt': 'sensor_msgs/msg/Image',
                            '/camera/condition': 'std_msgs/msg/String'}
    assert got['counts'] == {cam: n, '/camera/labels_gt': n, '/camera/condition': n}

    expected_ns = [START_NS + i * 200_000_000 for i in range(n)]  # 5 frames per second
    frames, labels, conds = (got['messages'][t] for t in (cam, '/camera/labels_gt',
                                                           '/camera/condition'))
    assert [ns for ns, _ in frames] == expected_ns
    assert [stamp(m) for _, m in frames] == expected_ns
    assert [stamp(m) for _, m in labels] == expected_ns
    assert [ns for ns, _ in conds] == expected_ns
    assert [m.data for _, m in conds] == [s['condition'] for s in samples]

    for (_, img), (_, lab), sample in zip(frames, labels, samples, strict=True):
        assert (lab.encoding, lab.height, lab.width, lab.step) == ('mono8', HEIGHT, WIDTH, WIDTH)
        np.testing.assert_array_equal(lab.data.reshape(HEIGHT, WIDTH), sample['label'])
        if compressed:
            assert compressed in img.format
            rgb = cv2.cvtColor(cv2.imdecode(img.data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        else:
            assert (img.encoding, img.height, img.width, img.step) == ('rgb8', HEIGHT, WIDTH,
                                                                       WIDTH * 3)
            rgb = img.data.reshape(HEIGHT, WIDTH, 3)
        if compressed == 'jpeg':  # lossy: close, not equal
            assert np.abs(rgb.astype(int) - sample['image']).mean() < 6
        else:
            np.testing.assert_array_equal(rgb, sample['image'])


def test_make_bag_refuses_to_overwrite_and_names_bad_data(dataset, tmp_path, capsys):
    root, _ = dataset
    bag = tmp_path / 'bag'
    bag.mkdir()
    assert seg_kd(['make-bag', '--data', str(root), '--conditions', 'fog', '--out',
                   str(bag)]) == 2
    assert 'exists; pass --overwrite' in capsys.readouterr().err
    assert seg_kd(['make-bag', '--data', str(tmp_path / 'nowhere'), '--out',
                   str(tmp_path / 'b')]) == 2
    assert str(tmp_path / 'nowhere') in capsys.readouterr().err
    assert not (tmp_path / 'b').exists()


@pytest.mark.parametrize('distro, version', [('humble', 8), ('jazzy', 9)])
def test_metadata_version_per_distro(dataset, tmp_path, distro, version):
    root, samples = dataset
    bag = tmp_path / 'bag'
    assert seg_kd(['make-bag', '--data', str(root), '--conditions', 'fog', '--out', str(bag),
                   '--distro', distro]) == 0
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['version'] == version
    qos = meta['topics_with_message_count'][0]['topic_metadata']['offered_qos_profiles']
    # v8 (what Humble parses) stores QoS as a YAML string, v9 as a list
    assert isinstance(qos, str if version == 8 else list)
    got = read_back(bag)
    assert got['counts']['/camera/image_raw'] == PER_CONDITION


def write_cityscapes(root: Path, kinds: tuple[str, ...], seed: int = 3) -> list[np.ndarray]:
    """A tiny Cityscapes val split with label files of the given kinds; returns the trainIds."""
    rng = np.random.default_rng(seed)
    labels = []
    for i in range(2):
        name = f'aachen_{i:06d}_000019'
        img_dir = root / 'leftImg8bit' / 'val' / 'aachen'
        gt_dir = root / 'gtFine' / 'val' / 'aachen'
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        train_ids = rng.integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8)
        train_ids[:3] = 255
        cv2.imwrite(str(img_dir / f'{name}_leftImg8bit.png'),
                    rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
        if 'trainids' in kinds:
            cv2.imwrite(str(gt_dir / f'{name}_gtFine_labelTrainIds.png'), train_ids)
        if 'labelids' in kinds:
            cv2.imwrite(str(gt_dir / f'{name}_gtFine_labelIds.png'),
                        train_ids_to_label_ids(train_ids))
        labels.append(train_ids)
    return labels


def bag_labels(bag: Path) -> list[np.ndarray]:
    return [m.data.reshape(m.height, m.width)
            for _, m in read_back(bag)['messages']['/camera/labels_gt']]


@pytest.mark.parametrize('kinds, option, read', [
    (('trainids',), 'auto', 'trainIds'),  # what cityscapesscripts' createTrainIdLabelImgs writes
    (('labelids',), 'auto', 'labelIds'),  # the official download
    (('trainids', 'labelids'), 'auto', 'labelIds'),
    (('trainids', 'labelids'), 'trainids', 'trainIds'),
])
def test_make_bag_reads_cityscapes_train_or_label_ids(tmp_path, capsys, kinds, option, read):
    want = write_cityscapes(tmp_path / 'cs', kinds)
    bag = tmp_path / 'bag'
    assert seg_kd(['make-bag', '--data', str(tmp_path / 'cs'), '--dataset', 'cityscapes',
                   '--label-kind', option, '--out', str(bag)]) == 0
    assert f'ground truth from the {read} files' in capsys.readouterr().out
    for got, train_ids in zip(bag_labels(bag), want, strict=True):
        np.testing.assert_array_equal(got, train_ids)  # trainIds whichever file was read


def test_make_bag_label_kind_errors_and_acdc_label_ids(dataset, tmp_path, capsys):
    write_cityscapes(tmp_path / 'cs', ('trainids',))
    assert seg_kd(['make-bag', '--data', str(tmp_path / 'cs'), '--dataset', 'cityscapes',
                   '--label-kind', 'labelids', '--out', str(tmp_path / 'bag')]) == 2
    err = capsys.readouterr().err
    assert '_gtFine_labelIds.png' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'bag').exists()
    # ACDC: the labelIds files, mapped, give the trainIds files' labels
    root, samples = tmp_path / 'acdc', dataset[1]
    shutil.copytree(dataset[0], root)
    for path in (root / 'gt').rglob('*_gt_labelTrainIds.png'):
        train_ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path).replace('_gt_labelTrainIds', '_gt_labelIds'),
                    train_ids_to_label_ids(train_ids))
    bag = tmp_path / 'acdc_bag'
    assert seg_kd(['make-bag', '--data', str(root), '--conditions', ','.join(CONDITIONS),
                   '--label-kind', 'labelids', '--out', str(bag)]) == 0
    for got, sample in zip(bag_labels(bag), samples, strict=True):
        np.testing.assert_array_equal(got, sample['label'])
