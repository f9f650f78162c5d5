"""Read camera frames (and ground truth, if the bag has it) from any ros2 bag, one frame at a time.

The camera topic may carry `sensor_msgs/msg/Image` or `sensor_msgs/msg/CompressedImage` (detected
from the type). Ground truth (mono8 `sensor_msgs/msg/Image`) is matched to a frame by
`header.stamp`, the condition (`std_msgs/msg/String`) by the bag timestamp, as `make_bag` writes
them. A frame that cannot be decoded (data shorter than `step * height`, unknown encoding,
undecodable JPEG...) is skipped and counted with its reason; a missing topic or an unreadable
bag raises `BagError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from seg_kd_ros.image_conversion import compressed_to_rgb, imgmsg_to_numpy, imgmsg_to_rgb

from .make_bag import CONDITION_TOPIC, IMAGE_TOPIC, LABELS_TOPIC, image_topic_for

RAW_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
GT_WINDOW_NS = 10**9  # a frame waits at most this long (bag time) for its ground truth


class BagError(RuntimeError):
    """A bag cannot be opened or read, or lacks a topic that was asked for."""


@dataclass
class Frame:
    """One camera frame of a bag, decoded and validated."""

    index: int
    bag_ns: int
    stamp_ns: int
    msg: object  # the rosbags message, to re-serialise with another stamp
    rgb: np.ndarray
    label: np.ndarray | None
    condition: str


@dataclass
class ReadStats:
    """What reading the bag skipped, with the first reasons."""

    malformed: int = 0
    reasons: list[str] = field(default_factory=list)
    error: str | None = None  # the bag stopped early (truncated / corrupt chunk)

    def skip(self, reason: str) -> None:
        """Count a skipped frame and keep the first reasons for the report."""
        self.malformed += 1
        if len(self.reasons) < 20:
            self.reasons.append(reason)


def stamp_ns(header) -> int:
    """A header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def _topics_text(reader: AnyReader) -> str:
    return ', '.join(f'{c.topic} [{c.msgtype}]' for c in reader.connections) or '(no topics)'


class BagFrames:
    """A ros2 bag opened for frame-by-frame reading; use as a context manager.

    Args:
        path: bag directory (or a single .mcap / .db3 file).
        image_topic: camera topic; None picks `/camera/image_raw` (or its `/compressed`), else the
            only image topic of the bag.
        labels_topic: ground-truth topic; ignored when the bag has no such topic.
        condition_topic: condition topic; ignored when the bag has no such topic.
    """

    def __init__(self, path: str | Path, image_topic: str | None = None,
                 labels_topic: str = LABELS_TOPIC, condition_topic: str = CONDITION_TOPIC) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f'{self.path}: no such bag')
        try:
            self.reader = AnyReader([self.path])
            self.reader.open()
        except Exception as err:  # rosbags raises several types for broken files
            raise BagError(f'{self.path}: cannot open the bag, its file is truncated or corrupt '
                           f'or it is not a ros2 bag ({type(err).__name__}: {err}). A recording '
                           'cut short may be recovered with `mcap recover` (mcap) or '
                           '`ros2 bag reindex` (sqlite3).') from err
        conns = {c.topic: c for c in self.reader.connections}
        self.image_conn = conns.get(image_topic) if image_topic else self._pick_image(conns)
        if self.image_conn is None:
            topics = _topics_text(self.reader)
            self.reader.close()
            raise BagError(f'{self.path}: image topic {image_topic!r} not in the bag; its topics: '
                           f'{topics}')
        if self.image_conn.msgtype not in (RAW_TYPE, COMPRESSED_TYPE):
            self.reader.close()
            raise BagError(f'{self.path}: topic {self.image_conn.topic} has type '
                           f'{self.image_conn.msgtype}, not {RAW_TYPE} or {COMPRESSED_TYPE}')
        self.compressed = self.image_conn.msgtype == COMPRESSED_TYPE
        self.labels_conn = conns.get(labels_topic)
        if self.labels_conn is not None and self.labels_conn.msgtype != RAW_TYPE:
            self.labels_conn = None
        self.condition_conn = conns.get(condition_topic)
        self.num_frames = self.image_conn.msgcount
        self.stats = ReadStats()

    def _pick_image(self, conns: dict):
        for topic in (image_topic_for(False, IMAGE_TOPIC), image_topic_for(True, IMAGE_TOPIC)):
            if topic in conns:
                return conns[topic]
        images = [c for c in conns.values() if c.msgtype in (RAW_TYPE, COMPRESSED_TYPE)
                  and c.topic != LABELS_TOPIC]
        if len(images) == 1:
            return images[0]
        topics = _topics_text(self.reader)
        self.reader.close()
        raise BagError(f'{self.path}: cannot tell which topic is the camera; pass --image-topic. '
                       f"The bag's topics: {topics}")

    @property
    def topics(self) -> list[str]:
        """The bag's topics."""
        return [c.topic for c in self.reader.connections]

    @property
    def has_ground_truth(self) -> bool:
        """Whether the bag carries a ground-truth label topic."""
        return self.labels_conn is not None

    def __enter__(self) -> BagFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag."""
        if self.reader.stack:
            self.reader.close()

    def serialize(self, frame: Frame, new_stamp_ns: int | None = None) -> bytes:
        """The frame's CDR bytes, optionally with another `header.stamp`."""
        msg = frame.msg
        if new_stamp_ns is not None:
            stamp = msg.header.stamp
            time_cls = type(stamp)
            header = type(msg.header)(stamp=time_cls(sec=new_stamp_ns // 10**9,
                                                     nanosec=new_stamp_ns % 10**9),
                                      frame_id=msg.header.frame_id)
            fields = {k: getattr(msg, k) for k in msg.__dataclass_fields__ if k != '__msgtype__'}
            msg = type(msg)(**{**fields, 'header': header})
        return bytes(self.reader.typestore.serialize_cdr(msg, self.image_conn.msgtype))

    def _decode(self, msg) -> np.ndarray:
        return compressed_to_rgb(msg) if self.compressed else imgmsg_to_rgb(msg)

    def frames(self) -> Iterator[Frame]:
        """Yield the valid frames in bag order; malformed ones are counted in `self.stats`."""
        conns = [c for c in (self.image_conn, self.labels_conn, self.condition_conn) if c]
        waiting: list[tuple[int, object]] = []  # (bag_ns, image msg) waiting for ground truth
        labels: dict[int, object] = {}
        conditions: dict[int, str] = {}
        index = 0
        used_stamps: set[int] = set()

        def ready(bag_ns: int, msg, now_ns: int | None) -> bool:
            if now_ns is None:
                return True
            if self.labels_conn is None or now_ns > bag_ns + GT_WINDOW_NS:
                return now_ns > bag_ns
            return now_ns > bag_ns and stamp_ns(msg.header) in labels

        def emit(bag_ns: int, msg) -> Frame | None:
            nonlocal index
            index += 1
            try:
                rgb = self._decode(msg)
            except ValueError as err:
                self.stats.skip(f'frame {index - 1} (t={bag_ns}): {err}')
                return None
            stamp = stamp_ns(msg.header)
            label = None
            gt = labels.pop(stamp, None)
            if gt is not None:
                try:
                    label = np.array(imgmsg_to_numpy(gt), dtype=np.uint8, copy=True)
                except ValueError as err:
                    self.stats.skip(f'frame {index - 1} (t={bag_ns}): ground truth: {err}')
                    return None
                if label.shape != rgb.shape[:2]:
                    self.stats.skip(f'frame {index - 1} (t={bag_ns}): ground truth '
                                    f'{label.shape} does not match the frame {rgb.shape[:2]}')
                    return None
            if stamp in used_stamps or stamp == 0:  # robots' bags: zero or repeated stamps
                stamp = bag_ns
                while stamp in used_stamps:
                    stamp += 1
            used_stamps.add(stamp)
            return Frame(index - 1, bag_ns, stamp, msg, rgb, label,
                         conditions.get(bag_ns, 'unknown'))

        def flush(now_ns: int | None) -> Iterator[Frame]:
            while waiting and ready(*waiting[0], now_ns):
                frame = emit(*waiting.pop(0))
                if frame is not None:
                    yield frame
            if now_ns is not None:  # forget old unmatched ground truth / conditions
                for table in (labels, conditions):
                    if len(table) > 64:
                        for key in [k for k in table if k < now_ns - 2 * GT_WINDOW_NS]:
                            table.pop(key)

        try:
            for conn, bag_ns, raw in self.reader.messages(connections=conns):
                yield from flush(bag_ns)
                try:
                    msg = self.reader.deserialize(raw, conn.msgtype)
                except Exception as err:  # noqa: BLE001 - any undecodable message is skipped
                    if conn is self.image_conn:
                        index += 1
                        self.stats.skip(f'frame {index - 1} (t={bag_ns}): cannot deserialise '
                                        f'{conn.msgtype}: {err}')
                    continue
                if conn is self.image_conn:
                    waiting.append((bag_ns, msg))
                elif conn is self.labels_conn:
                    labels[stamp_ns(msg.header)] = msg
                else:
                    conditions[bag_ns] = str(msg.data)
        except Exception as err:  # noqa: BLE001 - a truncated file ends the bag early
            self.stats.error = (f'{self.path}: the bag is damaged; read stopped after {index} '
                                f'frames ({type(err).__name__}: {err})')
        yield from flush(None)
