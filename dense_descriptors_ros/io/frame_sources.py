"""Frame sources: iterate ``(stamp_seconds, rgb uint8 (H, W, 3))`` from a video file, an image folder or a rosbag2.

All sources share one selection: ``stride`` (keep every n-th frame), ``start_time`` / ``end_time`` (seconds from
the first frame of the source) and ``max_frames``. Frames that are not selected are not decoded.

Rosbag2 (sqlite3 and mcap; sensor_msgs/msg/Image and CompressedImage) is read with ``rosbags``, no ROS install
needed. A bag that ``rosbags`` cannot open (truncated file, missing metadata.yaml after a crash) is salvaged record
by record: the frames that can be read are returned and a warning says what was skipped.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
import shutil
import sqlite3
import struct
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader

from dense_descriptors_ros.io.bag_writer import COMPRESSED_TYPE, IMAGE_TYPE, jazzy_typestore
from dense_descriptors_ros.io.image_conversion import compressed_to_numpy, image_to_numpy, to_rgb8

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BAG_SUFFIXES = (".mcap", ".db3")
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)

Frame = tuple[float, np.ndarray]
# A raw frame: its stamp and a function that decodes it (called only for selected frames).
LazyFrame = tuple[float, Callable[[], np.ndarray]]


def image_files(folder: Path) -> list[Path]:
    """The png/jpg files of ``folder`` in natural order (frame_2 before frame_10); ValueError when none."""

    def natural(path: Path) -> list:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path.name)]

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural)
    if not files:
        raise ValueError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
    return files


class FrameSource(ABC):
    """Iterable of ``(stamp_seconds, rgb)`` with stride / time range / max-frames selection."""

    def __init__(
        self,
        stride: int = 1,
        start_time: float | None = None,
        end_time: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        if start_time is not None and end_time is not None and end_time <= start_time:
            raise ValueError(f"end_time {end_time} must be after start_time {start_time}")
        self.stride = stride
        self.start_time = start_time
        self.end_time = end_time
        self.max_frames = max_frames

    @abstractmethod
    def _lazy_frames(self) -> Iterator[LazyFrame]:
        """Every frame of the source in order, undecoded."""

    def __iter__(self) -> Iterator[Frame]:
        first: float | None = None
        kept = 0
        in_range = 0
        for stamp, decode in self._lazy_frames():
            first = stamp if first is None else first
            t = stamp - first
            if self.start_time is not None and t < self.start_time:
                continue
            if self.end_time is not None and t > self.end_time:
                break
            in_range += 1
            if (in_range - 1) % self.stride:
                continue
            try:
                image = decode()
            except ValueError as exc:
                log.warning("%s: skipped the frame at %.6f s: %s", self.describe(), stamp, exc)
                continue
            yield stamp, to_rgb8(image)
            kept += 1
            if self.max_frames is not None and kept >= self.max_frames:
                break

    def read_all(self) -> list[Frame]:
        """All selected frames in a list."""
        return list(self)

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable name of the source (for logs and errors)."""


class VideoFrameSource(FrameSource):
    """Frames of a video file read with cv2.VideoCapture; stamps are frame index / fps."""

    def __init__(self, path: str | Path, **selection: Any) -> None:
        super().__init__(**selection)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")

    def describe(self) -> str:
        return f"video {self.path}"

    def _lazy_frames(self) -> Iterator[LazyFrame]:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise ValueError(f"{self.path}: OpenCV cannot open it as a video")
        try:
            fps = capture.get(cv2.CAP_PROP_FPS)
            fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
            index = 0
            while capture.grab():
                # retrieve() decodes the grabbed frame; only called for selected frames.
                def decode(capture: cv2.VideoCapture = capture) -> np.ndarray:
                    ok, bgr = capture.retrieve()
                    if not ok:
                        raise ValueError("frame could not be decoded")
                    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

                yield index / fps, decode
                index += 1
        finally:
            capture.release()


class ImageFolderFrameSource(FrameSource):
    """Sorted png/jpg files of a folder. Stamps come from the file names when they are all numbers
    (e.g. TUM ``1311868169.163498.png``), else index / ``fps``."""

    def __init__(self, path: str | Path, fps: float = 30.0, **selection: Any) -> None:
        super().__init__(**selection)
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.path}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.files = image_files(self.path)
        self.fps = fps

    def describe(self) -> str:
        return f"image folder {self.path}"

    def _stamps(self) -> list[float]:
        try:
            stamps = [float(p.stem) for p in self.files]
        except ValueError:
            stamps = []
        if stamps and all(b > a for a, b in itertools.pairwise(stamps)):
            return stamps
        return [i / self.fps for i in range(len(self.files))]

    def _lazy_frames(self) -> Iterator[LazyFrame]:
        for stamp, file in zip(self._stamps(), self.files, strict=True):

            def decode(file: Path = file) -> np.ndarray:
                image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
                if image is None:
                    raise ValueError(f"{file} could not be read as an image")
                if image.ndim == 3:
                    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
                    image = cv2.cvtColor(image, code)
                return image

            yield stamp, decode


def _decode_message(typestore: Any, raw: bytes, msgtype: str) -> np.ndarray:
    try:
        msg = typestore.deserialize_cdr(raw, msgtype)
    except Exception as exc:  # rosbags raises several types for bad CDR
        raise ValueError(f"{msgtype} message could not be deserialised ({exc})") from None
    return compressed_to_numpy(msg) if msgtype == COMPRESSED_TYPE else image_to_numpy(msg)


def _header_stamp(raw: bytes, receive_ns: int) -> float:
    """The header stamp of a CDR image message (seconds), or the bag receive time when the header has none."""
    # Header is the first field: 4-byte CDR encapsulation, then int32 sec, uint32 nanosec.
    if len(raw) >= 12:
        sec, nanosec = struct.unpack("<iI", raw[4:12]) if raw[1] == 1 else struct.unpack(">iI", raw[4:12])
        if sec > 0 or nanosec > 0:
            return sec + nanosec * 1e-9
    return receive_ns * 1e-9


class BagFrameSource(FrameSource):
    """Image frames of one topic of a rosbag2 (folder, or a single .mcap/.db3 file).

    ``topic`` may be left out when the bag has exactly one image topic. Stamps are the message header stamps
    (the bag receive time where a header is empty).
    """

    def __init__(self, path: str | Path, topic: str | None = None, **selection: Any) -> None:
        super().__init__(**selection)
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"rosbag2 not found: {self.path}")
        self.requested_topic = topic
        self.typestore = jazzy_typestore()

    def describe(self) -> str:
        return f"rosbag2 {self.path}"

    def _choose_topic(self, image_topics: dict[str, str], all_topics: dict[str, str]) -> str:
        if self.requested_topic is not None:
            if self.requested_topic not in all_topics:
                raise ValueError(f"{self.path}: topic {self.requested_topic!r} not in the bag; topics: {all_topics}")
            if self.requested_topic not in image_topics:
                raise ValueError(
                    f"{self.path}: topic {self.requested_topic!r} is {all_topics[self.requested_topic]}, "
                    f"expected one of {list(IMAGE_TYPES)}"
                )
            return self.requested_topic
        if not image_topics:
            raise ValueError(f"{self.path}: no Image or CompressedImage topic in this bag; topics: {all_topics}")
        if len(image_topics) > 1:
            raise ValueError(f"{self.path}: several image topics {sorted(image_topics)}; choose one with topic=...")
        return next(iter(image_topics))

    def topics(self) -> dict[str, str]:
        """Image topic name -> message type of the bag."""
        with _BagMessages(self.path) as messages:
            return {t: m for t, m in messages.topics.items() if m in IMAGE_TYPES}

    def _lazy_frames(self) -> Iterator[LazyFrame]:
        with _BagMessages(self.path) as messages:
            images = {t: m for t, m in messages.topics.items() if m in IMAGE_TYPES}
            topic = self._choose_topic(images, messages.topics)
            msgtype = images[topic]
            for receive_ns, raw in messages.read(topic):
                stamp = _header_stamp(raw, receive_ns)
                yield stamp, lambda raw=raw: _decode_message(self.typestore, raw, msgtype)


class _BagMessages:
    """(receive_ns, raw CDR) of one topic, through rosbags, or salvaged when rosbags cannot open the bag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: dict[str, str] = {}
        self._reader: AnyReader | None = None
        self._salvage: _SalvagedBag | None = None

    def __enter__(self) -> _BagMessages:
        bag_dir = self.path if self.path.is_dir() else None
        if bag_dir is not None and (bag_dir / "metadata.yaml").is_file():
            try:
                self._reader = AnyReader([bag_dir], default_typestore=jazzy_typestore())
                self._reader.open()
                self.topics = {c.topic: c.msgtype for c in self._reader.connections}
                return self
            except Exception as exc:  # rosbags raises ReaderError and also raw struct/sqlite errors
                log.warning("%s: rosbags cannot open it (%s); salvaging readable messages", self.path, exc)
                self._reader = None
        elif bag_dir is not None:
            log.warning("%s: no metadata.yaml (bag not closed?); salvaging readable messages", self.path)
        self._salvage = _SalvagedBag(self.path)
        self.topics = self._salvage.topics
        return self

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        if self._salvage is not None:
            yield from self._salvage.read(topic)
            return
        assert self._reader is not None
        connections = [c for c in self._reader.connections if c.topic == topic]
        count = 0
        try:
            for _, receive_ns, raw in self._reader.messages(connections=connections):
                count += 1
                yield receive_ns, bytes(raw)
        except Exception as exc:  # a damaged chunk or page met while iterating
            log.warning("%s: stopped after %d message(s) of %s: %s; the rest was skipped", self.path, count, topic, exc)

    def __exit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._salvage is not None:
            self._salvage.close()


class _SalvagedBag:
    """Reads what it can from the .mcap / .db3 storage files of a damaged bag, warning about the rest."""

    def __init__(self, path: Path) -> None:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in BAG_SUFFIXES)
        else:
            files = [path] if path.suffix in BAG_SUFFIXES else []
        if not files:
            raise ValueError(f"{path}: not a rosbag2 (no metadata.yaml and no .mcap/.db3 storage file)")
        self.files = files
        self.topics: dict[str, str] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="ddr_bag_salvage_"))
        self._sources = [_McapSalvage(f) if f.suffix == ".mcap" else _SqliteSalvage(f, self._tmp) for f in files]
        for source in self._sources:
            self.topics.update(source.topics)

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        for source in self._sources:
            yield from source.read(topic)

    def close(self) -> None:
        for source in self._sources:
            source.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


MCAP_MAGIC = b"\x89MCAP0\r\n"


class _McapSalvage:
    """Sequential MCAP record scan that stops cleanly at the first truncated or damaged record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        if not self.data.startswith(MCAP_MAGIC):
            raise ValueError(f"{path}: not an MCAP file (bad magic)")
        self.topics: dict[str, str] = {}
        self._channels: dict[int, str] = {}
        self._messages: list[tuple[int, int, bytes]] = []  # (channel id, receive ns, raw)
        self._scan()

    def _scan(self) -> None:
        schemas: dict[int, str] = {}
        try:
            for opcode, body, complete in _mcap_records(self.data, len(MCAP_MAGIC)):
                if opcode != 0x06:
                    if not complete:
                        raise ValueError(f"record (op {opcode:#04x}) cut short by the end of the file")
                    self._record(opcode, body, schemas)
                    continue
                # A chunk holds records, maybe compressed; an uncompressed chunk cut short is read up to the cut.
                for inner_op, inner, inner_complete in _mcap_records(_mcap_chunk_payload(body, complete), 0):
                    if not inner_complete:
                        raise ValueError(f"record (op {inner_op:#04x}) inside a chunk cut short")
                    self._record(inner_op, inner, schemas)
                if not complete:
                    raise ValueError("the last chunk is cut short")
        except (ValueError, struct.error) as exc:
            log.warning(
                "%s: damaged or truncated (%s); kept the %d message(s) before that, skipped the rest",
                self.path,
                exc,
                len(self._messages),
            )

    def _record(self, opcode: int, body: bytes, schemas: dict[int, str]) -> None:
        stream = io.BytesIO(body)
        if opcode == 0x03:  # schema
            (schema_id,) = struct.unpack("<H", _read(stream, 2))
            schemas[schema_id] = _read_string(stream)
        elif opcode == 0x04:  # channel
            channel_id, schema_id = struct.unpack("<HH", _read(stream, 4))
            topic = _read_string(stream)
            self._channels[channel_id] = topic
            self.topics[topic] = schemas.get(schema_id, "")
        elif opcode == 0x05:  # message
            channel_id, _, log_time, _ = struct.unpack("<HIQQ", _read(stream, 22))
            self._messages.append((channel_id, log_time, body[22:]))

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        for channel_id, receive_ns, raw in self._messages:
            if self._channels.get(channel_id) == topic:
                yield receive_ns, raw

    def close(self) -> None:
        self._messages.clear()


def _read(stream: io.BytesIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"record cut short: wanted {size} bytes, got {len(data)}")
    return data


def _read_string(stream: io.BytesIO) -> str:
    (size,) = struct.unpack("<I", _read(stream, 4))
    return _read(stream, size).decode()


def _mcap_records(data: bytes, offset: int) -> Iterator[tuple[int, bytes, bool]]:
    """(opcode, body, complete) of each record from ``offset``; the last one may be cut short by the data end."""
    while offset < len(data):
        if data[offset : offset + 8] == MCAP_MAGIC:  # closing magic after the footer
            return
        if offset + 9 > len(data):
            raise ValueError(f"record header cut at byte {offset} of {len(data)}")
        opcode = data[offset]
        (size,) = struct.unpack_from("<Q", data, offset + 1)
        end = offset + 9 + size
        yield opcode, data[offset + 9 : end], end <= len(data)
        offset = end


def _mcap_chunk_payload(body: bytes, complete: bool) -> bytes:
    """The records inside a chunk; for a chunk cut short, the uncompressed records that are there."""
    stream = io.BytesIO(body)
    _, _, uncompressed_size, _ = struct.unpack("<QQQI", _read(stream, 28))
    compression = _read_string(stream)
    _read(stream, 8)  # compressed size
    payload = stream.read()
    if compression == "":
        return payload
    if not complete:
        raise ValueError(f"the last chunk ({compression}-compressed) is cut short and cannot be decompressed")
    from rosbags.rosbag2.storage_mcap import decompress  # lz4 / zstd, as rosbags itself reads them

    try:
        return decompress(payload, compression, uncompressed_size, None)
    except Exception as exc:
        raise ValueError(f"{compression} chunk could not be decompressed ({exc})") from None


class _SqliteSalvage:
    """Reads a damaged rosbag2 .db3: pads a truncated copy back to its page count and reads row by row."""

    MISSES_BEFORE_END = 256  # consecutive unreadable/missing ids after which the table is taken to end

    def __init__(self, path: Path, tmp: Path) -> None:
        self.path = path
        self.copy = tmp / path.name
        shutil.copyfile(path, self.copy)
        self._pad_to_page_count()
        self.connection = sqlite3.connect(f"file:{self.copy}?immutable=1", uri=True)
        try:
            rows = self.connection.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{path}: the topics table is unreadable ({exc}); nothing can be salvaged") from None
        self._ids = {name: topic_id for topic_id, name, _ in rows}
        self.topics = {name: msgtype for _, name, msgtype in rows}

    def _pad_to_page_count(self) -> None:
        with self.copy.open("rb") as f:
            header = f.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise ValueError(f"{self.path}: not an SQLite database (header missing or cut)")
        (page_size,) = struct.unpack(">H", header[16:18])
        page_size = 65536 if page_size == 1 else page_size
        (pages,) = struct.unpack(">I", header[28:32])
        missing = page_size * pages - self.copy.stat().st_size
        if missing > 0:
            log.warning("%s: truncated, %d byte(s) missing at the end; those messages are skipped", self.path, missing)
            with self.copy.open("ab") as f:
                f.write(b"\0" * missing)

    def read(self, topic: str) -> Iterator[tuple[int, bytes]]:
        topic_id = self._ids[topic]
        row_id, last_good, misses, unreadable, skipped = 0, 0, 0, 0, 0
        while misses < self.MISSES_BEFORE_END:
            row_id += 1
            try:
                row = self.connection.execute(
                    "SELECT topic_id, timestamp, data FROM messages WHERE id = ?", (row_id,)
                ).fetchone()
            except sqlite3.DatabaseError:
                row = None
                unreadable += 1
            if row is None:
                misses += 1
                continue
            skipped += unreadable  # unreadable rows between two good ones
            misses, unreadable, last_good = 0, 0, row_id
            if row[0] == topic_id:
                yield int(row[1]), bytes(row[2])
        if skipped:
            log.warning("%s: %d damaged message row(s) skipped", self.path, skipped)
        if unreadable:
            log.warning("%s: message rows after id %d are unreadable and were skipped", self.path, last_good)

    def close(self) -> None:
        self.connection.close()


def is_rosbag(path: str | Path) -> bool:
    """True for a .mcap/.db3 file or a folder holding metadata.yaml or such a storage file."""
    path = Path(path)
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    return path.is_dir() and (
        (path / "metadata.yaml").is_file() or any(p.suffix in BAG_SUFFIXES for p in path.iterdir())
    )


def open_frame_source(path: str | Path, **options: Any) -> FrameSource:
    """The frame source for ``path``: a rosbag2 folder or .mcap/.db3 file, an image folder, or a video file.

    ``options``: stride, start_time, end_time, max_frames; ``topic`` for bags; ``fps`` for image folders.
    """
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise FileNotFoundError(f"no video, image folder or rosbag2 at {path}")
    is_bag = is_rosbag(path)
    bag_only, folder_only = {"topic"}, {"fps"}
    kind_options = bag_only if is_bag else folder_only if path.is_dir() else set()
    wrong = sorted((set(options) & (bag_only | folder_only)) - kind_options)
    if wrong:
        raise ValueError(f"option(s) {wrong} do not apply to {path}")
    if is_bag:
        return BagFrameSource(path, **options)
    if path.is_dir():
        return ImageFolderFrameSource(path, **options)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{path} is a single image; pass the folder that holds the frames")
    return VideoFrameSource(path, **options)
