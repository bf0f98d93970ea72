"""Write image topics to rosbag2 (mcap or sqlite3) with the ``rosbags`` library: no ROS install needed.

``ImageBagWriter`` writes one image topic incrementally (the recorder node and the tests use it), plus any
extra topics of raw CDR messages (e.g. camera_info), and can ``flush`` so a process killed later (SIGKILL) leaves
everything written before the flush readable; ``write_image_bag`` writes a whole sequence of frames in one call.
Messages are stored as CDR with the ROS 2 Jazzy type definitions, so ``ros2 bag info/play`` and our frame
sources read them back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
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

    def flush(self) -> None:
        """Put everything written so far into the storage file, readable after a crash (metadata.yaml is only
        written by ``close``; the frame sources salvage such a bag).

        mcap: rosbags keeps the open chunk in memory (up to 1 MiB), so the chunk is closed and the file flushed.
        sqlite3: the open transaction is committed; the connection is set up at ``open`` not to spill uncommitted
        pages into the file, so a killed process leaves the last committed state.
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

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml). Safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ImageBagWriter:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
