"""Write a segmentation dataset split into a ros2 bag (mcap or sqlite3) with the `rosbags` library.

One frame of the split becomes three messages with the same bag timestamp and, where the type has a
header, the same `header.stamp`:

- the camera frame, `sensor_msgs/msg/Image` rgb8 on `/camera/image_raw`, or with `compressed=True`
  `sensor_msgs/msg/CompressedImage` (jpeg or png) on `/camera/image_raw/compressed`;
- the ground truth, `sensor_msgs/msg/Image` mono8 trainIds (255 ignore, lossless) on
  `/camera/labels_gt`;
- the weather condition, `std_msgs/msg/String` on `/camera/condition` (String has no header: it is
  matched by the bag timestamp).

Message definitions and type hashes come from the rosbags typestore of the chosen ROS 2 distro and
every topic carries offered QoS metadata, so `ros2 bag info` / `ros2 bag play` open the bag.

The bag is written into a hidden folder beside `out` and renamed into place when complete: a
failed or interrupted run leaves no partial bag, and an existing bag it was to replace is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from seg_kd_ros.atomic_files import atomic_folder
from seg_kd_train.errors import SegKdError

IMAGE_TOPIC = '/camera/image_raw'
COMPRESSED_SUFFIX = '/compressed'
LABELS_TOPIC = '/camera/labels_gt'
CONDITION_TOPIC = '/camera/condition'
FRAME_ID = 'camera'
DEFAULT_START_NS = 1_700_000_000 * 10**9  # a fixed start, so a bag is reproducible bit for bit

DISTROS = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY, 'kilted': Stores.ROS2_KILTED}
FORMATS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
# image_transport writes '<source encoding>; <codec> compressed <encoded as>' into `format`.
COMPRESSIONS = {'jpeg': ('.jpg', 'rgb8; jpeg compressed bgr8'),
                'png': ('.png', 'rgb8; png compressed bgr8')}

_DEFAULT = QosTime(sec=0, nsec=0)  # 0 = the rmw default (no deadline, lifespan, lease)
RELIABLE_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
                   _DEFAULT, _DEFAULT, QosLiveliness.AUTOMATIC, _DEFAULT, False)


# `--label-kind` -> the loaders' label_type; 'auto' tries the dataset's usual kind, then the other
LABEL_KINDS = {'trainids': 'trainIds', 'labelids': 'labelIds'}
USUAL_LABELS = {'acdc': ('trainIds', 'labelIds'), 'cityscapes': ('labelIds', 'trainIds')}


class MakeBagError(SegKdError, ValueError):
    """A dataset sample or an option cannot be written into a bag."""


def open_split(dataset: str, root: Path, split: str, conditions: Sequence[str] | None,
               label_kind: str = 'auto'):
    """Open a dataset split for a bag; returns (dataset, label_type read).

    Args:
        dataset: 'acdc', 'cityscapes' or 'bdd100k'.
        root: the dataset root.
        split: the split to read.
        conditions: ACDC conditions (None: the default four).
        label_kind: 'trainids' (`*_labelTrainIds.png`), 'labelids' (`*_labelIds.png`, mapped to
            trainIds) or 'auto': the dataset's usual files (ACDC trainIds, Cityscapes
            labelIds), else the other kind if the split has only those.

    Raises:
        MakeBagError: a label kind the dataset does not have.
        DatasetLayoutError: the root or the split does not hold the layout, or labels are missing.
    """
    from seg_kd_train.data import DatasetLayoutError, build_dataset

    if dataset not in USUAL_LABELS:
        if label_kind != 'auto':
            raise MakeBagError(f'--label-kind {label_kind}: {dataset} has one kind of label file;'
                               ' leave --label-kind out')
        return build_dataset(dataset, root, split, conditions), 'trainIds'
    if label_kind != 'auto':
        kind = LABEL_KINDS[label_kind]
        return build_dataset(dataset, root, split, conditions, label_type=kind), kind
    usual, other = USUAL_LABELS[dataset]
    try:
        return build_dataset(dataset, root, split, conditions, label_type=usual), usual
    except DatasetLayoutError as exc:
        if 'has no label file' not in str(exc):
            raise
        first = exc
    try:
        return build_dataset(dataset, root, split, conditions, label_type=other), other
    except DatasetLayoutError:
        raise first from None  # neither kind: name the usual one


def samples_of(dataset, limit: int | None = None) -> Iterator[dict]:
    """The untransformed samples of a dataset, `label` None where the split has no labels."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(count):
        sample = dataset.load(i)
        if dataset.records[i].label is None:  # e.g. a test split: no ground truth
            sample = {**sample, 'label': None}
        yield sample


@dataclass(frozen=True)
class BagSummary:
    """What `write_bag` wrote."""

    path: Path
    frames: int
    topics: dict[str, int]
    duration_s: float


def image_topic_for(compressed: bool, base: str = IMAGE_TOPIC) -> str:
    """The camera topic: `base` for raw frames, `base + '/compressed'` for compressed ones."""
    return base + COMPRESSED_SUFFIX if compressed else base


def _stamp(typestore, ns: int):
    time_cls = typestore.types['builtin_interfaces/msg/Time']
    return time_cls(sec=ns // 10**9, nanosec=ns % 10**9)


def _header(typestore, ns: int, frame_id: str):
    return typestore.types['std_msgs/msg/Header'](stamp=_stamp(typestore, ns), frame_id=frame_id)


def _check_sample(sample: Mapping, index: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    image = np.asarray(sample['image'])
    where = f"sample {index} ({sample.get('path', '?')})"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MakeBagError(f'{where}: image must be uint8 HxWx3 RGB, got {image.dtype} '
                           f'{image.shape} (pass the dataset without a transform)')
    label = sample.get('label')
    if label is not None:
        label = np.asarray(label)
        if label.dtype != np.uint8 or label.shape != image.shape[:2]:
            raise MakeBagError(f'{where}: label must be uint8 HxW matching the image '
                               f'{image.shape[:2]}, got {label.dtype} {label.shape}')
    return image, label, str(sample.get('condition', 'unknown'))


def write_bag(samples: Iterable[Mapping], out: str | Path, *, storage: str = 'mcap',
              compressed: str | None = None, rate: float = 10.0, distro: str = 'kilted',
              start_ns: int = DEFAULT_START_NS, image_topic: str = IMAGE_TOPIC,
              jpeg_quality: int = 90, total: int | None = None,
              progress: bool = True, overwrite: bool = False) -> BagSummary:
    """Write dataset samples into a new ros2 bag.

    Args:
        samples: dicts with `image` (uint8 HxWx3 RGB), optional `label` (uint8 HxW trainIds) and
            `condition` (str), as a dataset without transform returns them.
        out: bag directory to create (it must not exist unless `overwrite`).
        storage: 'mcap' or 'sqlite3'.
        compressed: None for raw rgb8 frames, 'jpeg' or 'png' for CompressedImage frames.
        rate: frames per second of the recording (stamps step by 1/rate).
        distro: ROS 2 distro whose message definitions go into the bag ('humble' also writes
            metadata version 8, which Humble's rosbag2 parses; others get version 9).
        start_ns: stamp of the first frame in nanoseconds since the epoch.
        image_topic: base camera topic (`/compressed` is appended for compressed frames).
        jpeg_quality: JPEG quality (0-100) for `compressed='jpeg'`.
        total: number of samples, for the progress bar.
        progress: show a tqdm progress bar.
        overwrite: replace an existing bag at `out` (only once the new one is complete).

    Returns:
        What was written.

    Raises:
        MakeBagError: a bad option or sample (names it), or `out` exists without `overwrite`.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise MakeBagError(f'{out} exists; pass --overwrite to replace it, or choose another '
                           '--out')
    with atomic_folder(out) as new:  # named as out: the storage file is named after it
        summary = _write(samples, new, storage, compressed, rate, distro, start_ns, image_topic,
                         jpeg_quality, total, progress)
    return BagSummary(out, summary.frames, summary.topics, summary.duration_s)


def _write(samples: Iterable[Mapping], out: Path, storage: str, compressed: str | None,
           rate: float, distro: str, start_ns: int, image_topic: str, jpeg_quality: int,
           total: int | None, progress: bool) -> BagSummary:
    """`write_bag` into a new folder `out` (no staging)."""
    if storage not in FORMATS:
        raise MakeBagError(f'storage {storage!r} unknown; choose one of {sorted(FORMATS)}')
    if distro not in DISTROS:
        raise MakeBagError(f'distro {distro!r} unknown; choose one of {sorted(DISTROS)}')
    if compressed is not None and compressed not in COMPRESSIONS:
        raise MakeBagError(f'compression {compressed!r} unknown; choose one of '
                           f'{sorted(COMPRESSIONS)}')
    if not rate > 0:
        raise MakeBagError(f'rate must be > 0 frames per second, got {rate}')
    typestore = get_typestore(DISTROS[distro])
    image_cls = typestore.types['sensor_msgs/msg/Image']
    compressed_cls = typestore.types['sensor_msgs/msg/CompressedImage']
    string_cls = typestore.types['std_msgs/msg/String']
    cam_topic = image_topic_for(compressed is not None, image_topic)
    cam_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    step_ns = int(round(1e9 / rate))
    frames = 0
    counts = {cam_topic: 0, LABELS_TOPIC: 0, CONDITION_TOPIC: 0}
    # Humble's rosbag2 reads QoS as a YAML string (metadata v8), not the v9 list (rosbag2 #1895)
    version = 8 if distro == 'humble' else Writer.VERSION_LATEST
    writer = Writer(out, version=version, storage_plugin=FORMATS[storage])
    writer.open()
    try:
        qos = dict(typestore=typestore, offered_qos_profiles=[RELIABLE_QOS])
        cam = writer.add_connection(cam_topic, cam_type, **qos)
        gt = writer.add_connection(LABELS_TOPIC, 'sensor_msgs/msg/Image', **qos)
        cond = writer.add_connection(CONDITION_TOPIC, 'std_msgs/msg/String', **qos)
        writer.set_custom_data('seg_kd_ros.rate_hz', repr(float(rate)))
        for index, sample in enumerate(tqdm(samples, total=total, desc=f'make-bag {out.name}',
                                            unit='frame',
                                            disable=None if progress else True)):
            image, label, condition = _check_sample(sample, index)
            ns = start_ns + index * step_ns
            h, w = image.shape[:2]
            if compressed:
                ext, fmt = COMPRESSIONS[compressed]
                params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == '.jpg' else []
                ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
                if not ok:
                    raise MakeBagError(f'sample {index}: cv2 could not encode the frame as {ext}')
                msg = compressed_cls(header=_header(typestore, ns, FRAME_ID), format=fmt,
                                     data=buf.reshape(-1))
            else:
                msg = image_cls(header=_header(typestore, ns, FRAME_ID), height=h, width=w,
                                encoding='rgb8', is_bigendian=0, step=w * 3,
                                data=np.ascontiguousarray(image).reshape(-1))
            writer.write(cam, ns, typestore.serialize_cdr(msg, cam_type))
            counts[cam_topic] += 1
            if label is not None:
                gt_msg = image_cls(header=_header(typestore, ns, FRAME_ID), height=h, width=w,
                                   encoding='mono8', is_bigendian=0, step=w,
                                   data=np.ascontiguousarray(label).reshape(-1))
                writer.write(gt, ns, typestore.serialize_cdr(gt_msg, 'sensor_msgs/msg/Image'))
                counts[LABELS_TOPIC] += 1
            writer.write(cond, ns, typestore.serialize_cdr(string_cls(data=condition),
                                                           'std_msgs/msg/String'))
            counts[CONDITION_TOPIC] += 1
            frames += 1
    except BaseException:
        writer.close()
        raise
    writer.close()
    if frames == 0:
        raise MakeBagError(f'{out}: the dataset split has no samples; nothing was written')
    return BagSummary(out, frames, counts, (frames - 1) * step_ns / 1e9)
