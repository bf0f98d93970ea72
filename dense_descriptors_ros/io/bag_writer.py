"""Write image topics to rosbag2 (mcap or sqlite3) with the ``rosbags`` library: no ROS install needed.

``ImageBagWriter`` writes one image topic incrementally (the recorder node and the tests use it), plus any
extra topics of raw CDR messages (e.g. camera_info), and can ``flush`` so a process killed later (SIGKILL) leaves
everything written before the flush readable; ``write_image_bag`` writes a whole sequence of frames in one call.
Messages are stored as CDR with the ROS 2 Jazzy type definitions, so ``ros2 bag info/play`` and our frame
sources read them back.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from dense_descriptors_ros.io.image_conversion import numpy_to_compressed, numpy_to_image

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy


def jazzy_typestore() -> Any:
    """The rosbags type store with the ROS 2 Jazzy message definitions (shared by readers and writers)."""
    return get_typestore(Stores.ROS2_JAZZY)


def _stamp_to_ns(stamp: float) -> int:
    if not np.isfinite(stamp) or stamp < 0:
        raise ValueError(f"stamp must be a finite, non-negative number of seconds, got {stamp!r}")
    return round(stamp * 1e9)


class ImageBagWriter:
    """Incremental writer of one image topic to a new rosbag2 folder.

    ``write(stamp, item)`` takes an RGB uint8 (H, W, 3) or grey (H, W) array (encoded as Image ``encoding`` or,
    with ``compressed=True``, as CompressedImage in ``compressed_format``), a rosbags message of the topic type,
    or already CDR-serialised bytes (e.g. from ``rclpy.serialization.serialize_message``).
    """

    def __init__(
        self,
        path: str | Path,
        topic: str = "/camera/image_raw",
        storage: str = "mcap",
        compressed: bool = False,
        encoding: str = "rgb8",
        compressed_format: str = "jpeg",
        frame_id: str = "camera",
    ) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {list(STORAGES)}, got {storage!r}")
        if not topic.startswith("/"):
            raise ValueError(f"topic must be an absolute name starting with '/', got {topic!r}")
        self.path = Path(path)
        self.topic = topic
        self.storage = storage
        self.compressed = compressed
        self.encoding = encoding
        self.compressed_format = compressed_format
        self.frame_id = frame_id
        self.msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
        self.count = 0
        self.bytes_written = 0  # serialised message bytes, all topics
        self._typestore = jazzy_typestore()
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._flushed: _FlushPoint | None = None  # the state of the last flush, to return to after a write error

    def open(self) -> ImageBagWriter:
        """Create the bag folder (it must not exist yet) and register the topic."""
        if self._writer is not None:
            return self
        if self.path.exists():
            raise FileExistsError(f"bag folder already exists: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[self.storage])
        self._writer.open()
        if self.storage == "sqlite3":
            self._reconnect_sqlite()
        self.add_topic(self.topic, self.msgtype)
        self._flushed = _FlushPoint.take(self)  # an error before the first flush returns to the empty bag
        return self

    def _reconnect_sqlite(self) -> None:
        """Swap rosbags' sqlite connection (its schema is committed) for one usable from any thread (callers
        serialise the calls, e.g. a node's callbacks under a lock) that keeps uncommitted pages in memory until
        commit (``flush``), so the file never holds half a transaction."""
        storage = self._writer.storage
        storage.conn.close()
        storage.conn = sqlite3.connect(f"file:{storage.path}", uri=True, check_same_thread=False)
        storage.conn.execute("PRAGMA cache_spill=OFF")
        storage.cursor = storage.conn.cursor()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register another topic (e.g. ``/camera/camera_info``, ``sensor_msgs/msg/CameraInfo``) for ``write_raw``."""
        if self._writer is None:
            raise RuntimeError(f"ImageBagWriter for {self.path} is not open; call open() first")
        if topic in self._connections:
            raise ValueError(f"topic {topic} is already in {self.path}")
        if msgtype not in self._typestore.types:
            raise ValueError(
                f"unknown message type {msgtype!r}; expected a ROS 2 Jazzy type like sensor_msgs/msg/Image"
            )
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)

    def message(self, stamp: float, array: np.ndarray) -> Any:
        """A rosbags Image/CompressedImage message of ``array`` with header stamp ``stamp`` (seconds)."""
        types = self._typestore.types
        ns = _stamp_to_ns(stamp)
        header = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
            frame_id=self.frame_id,
        )
        fields = SimpleNamespace(data=np.zeros(0, np.uint8))
        if self.compressed:
            numpy_to_compressed(array, self.compressed_format, msg=fields)
            return types[COMPRESSED_TYPE](header=header, format=fields.format, data=fields.data)
        numpy_to_image(array, self.encoding, msg=fields)
        return types[IMAGE_TYPE](
            header=header,
            height=fields.height,
            width=fields.width,
            encoding=fields.encoding,
            is_bigendian=fields.is_bigendian,
            step=fields.step,
            data=fields.data,
        )

    def write(self, stamp: float, item: np.ndarray | bytes | Any) -> None:
        """Append one message at receive time ``stamp`` (seconds since the epoch)."""
        if isinstance(item, np.ndarray):
            item = self.message(stamp, item)
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
        else:
            if getattr(item, "__msgtype__", None) != self.msgtype:
                raise ValueError(f"topic {self.topic} takes {self.msgtype}, got {type(item).__name__}")
            data = self._typestore.serialize_cdr(item, self.msgtype)
        self.write_raw(self.topic, _stamp_to_ns(stamp), data)
        self.count += 1

    def write_raw(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append already CDR-serialised bytes of a registered topic at receive time ``timestamp_ns``."""
        if self._writer is None:
            raise RuntimeError(f"ImageBagWriter for {self.path} is not open; call open() or use it as a context")
        if topic not in self._connections:
            raise ValueError(f"topic {topic} is not in {self.path}; register it with add_topic() first")
        self._writer.write(self._connections[topic], int(timestamp_ns), data)
        self.bytes_written += len(data)

    @property
    def unflushed_bytes(self) -> int:
        """Message bytes written since the last flush (what a flush or close still has to put on disk)."""
        return (self.bytes_written - self._flushed.bytes_written) if self._flushed else 0

    def message_count(self, topic: str) -> int:
        """Messages of ``topic`` in the bag so far."""
        if self._writer is None or topic not in self._connections:
            return 0
        return self._writer.counts[self._connections[topic].id]

    def flush(self) -> None:
        """Put everything written so far into the storage file, readable after a crash, and write metadata.yaml
        for it (rosbags writes that only at close).

        mcap: rosbags keeps the open chunk in memory (up to 1 MiB), so the chunk is closed and the file flushed; a
        killed process leaves a file without its summary and footer, which our frame sources salvage (so does
        ``ros2 bag reindex``). sqlite3: the open transaction is committed (the connection is set up at ``open``
        not to spill uncommitted pages into the file), so a killed process leaves the last committed state, which
        rosbags reads with this metadata.yaml. Raises OSError / sqlite3.Error when the disk refuses the data:
        ``close_at_last_flush`` then finishes the bag as it was here.
        """
        if self._writer is None or self._writer.storage is None:
            return
        storage = self._writer.storage
        if self.storage == "mcap":
            if storage.chunk.msgs:  # rosbags' McapWriter internals: the pending chunk and the file object
                storage.close_chunk()
            storage.bio.flush()
        else:
            storage.conn.commit()
        self._flushed = _FlushPoint.take(self)
        _write_metadata(self._writer)

    def close_at_last_flush(self) -> int:
        """After a write error (disk full): drop what was written since the last flush and finish the bag as it was
        then, so rosbags and our frame sources read it and metadata.yaml counts exactly what it holds (when even
        that fails, the storage file is left as flushed, with the metadata.yaml of that flush). Returns the number
        of messages of the image topic the bag keeps."""
        if self._writer is None:
            return 0
        writer, self._writer = self._writer, None
        self._flushed.restore(self, writer)
        try:
            writer.close()
        except (OSError, sqlite3.Error):
            writer.abort()
        return self._flushed.counts.get(self._connections[self.topic].id, 0)

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml). Safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ImageBagWriter:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class _FlushPoint:
    """What a bag held at a flush: rosbags' message counts and time range, and for mcap the end of the data in the
    file and the chunk index (rosbags internals; the pending chunk starts empty after a flush)."""

    bytes_written: int
    counts: dict[int, int]
    min_timestamp: int
    max_timestamp: int
    file_end: int = 0
    chunks: int = 0
    channel_stats: dict[int, int] = field(default_factory=dict)
    message_start_time: int = 0
    message_end_time: int = 0

    @classmethod
    def take(cls, bag: ImageBagWriter) -> _FlushPoint:
        writer = bag._writer
        point = cls(bag.bytes_written, dict(writer.counts), writer.min_timestamp, writer.max_timestamp)
        if bag.storage == "mcap":
            storage = writer.storage
            point.file_end, point.chunks = storage.bio.tell(), len(storage.chunks)
            point.channel_stats = dict(storage.channel_stats)
            point.message_start_time, point.message_end_time = storage.message_start_time, storage.message_end_time
        return point

    def restore(self, bag: ImageBagWriter, writer: Writer) -> None:
        """Put ``writer`` back to this point (what was written since is dropped)."""
        for cid in writer.counts:  # connections added after this point had no messages here
            writer.counts[cid] = self.counts.get(cid, 0)
        writer.min_timestamp, writer.max_timestamp = self.min_timestamp, self.max_timestamp
        bag.bytes_written = self.bytes_written
        if bag.storage == "sqlite3":
            writer.storage.conn.rollback()
            return
        storage = writer.storage
        with contextlib.suppress(OSError):  # its buffer holds the bytes the disk refused
            storage.bio.close()
        storage.bio = storage.path.open("r+b")
        storage.bio.truncate(self.file_end)
        storage.bio.seek(self.file_end)
        storage.chunk.bio = io.BytesIO()  # close() then writes no pending chunk, only the summary and footer
        del storage.chunks[self.chunks :]
        storage.channel_stats = {cid: self.channel_stats.get(cid, 0) for cid in storage.channel_stats}
        storage.message_start_time, storage.message_end_time = self.message_start_time, self.message_end_time


class _MetadataOnly:
    """Stands in for a rosbags storage so ``Writer.close`` writes metadata.yaml and nothing else."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def close(self, version: int, metadata: str) -> None:
        pass


def _write_metadata(writer: Writer) -> None:
    """metadata.yaml of what ``writer`` holds now, in rosbags' own format, leaving the writer open."""
    shadow = copy.copy(writer)
    shadow.counts = dict(writer.counts)
    shadow.storage = _MetadataOnly(writer.storage.path)
    shadow.close()


def write_image_bag(
    path: str | Path,
    frames: Iterable[tuple[float, np.ndarray] | np.ndarray],
    topic: str = "/camera/image_raw",
    storage: str = "mcap",
    compressed: bool = False,
    **writer_options: Any,
) -> Path:
    """Write frames to a new bag folder at ``path``; returns the folder.

    ``frames`` holds ``(stamp_seconds, image)`` pairs, or bare images, which get stamps 1/30 s apart from 1 s.
    ``writer_options`` go to ``ImageBagWriter`` (encoding, compressed_format, frame_id).
    """
    with ImageBagWriter(path, topic=topic, storage=storage, compressed=compressed, **writer_options) as writer:
        for k, item in enumerate(frames):
            stamp, image = item if isinstance(item, tuple) else (1.0 + k / 30.0, item)
            writer.write(stamp, image)
    return Path(path)
