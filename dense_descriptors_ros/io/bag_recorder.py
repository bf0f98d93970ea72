"""Record an image topic (+ camera_info) as it arrives, as raw CDR bytes, into numbered rosbag2 folders; no ROS.

The recorder node hands over the serialised messages it receives; ``BagRecorder`` decodes only what frame
selection needs (the rosbags type store; the pixels only when the rate allows), writes the kept messages
byte-for-byte, splits bags by size or duration, and flushes on request so a killed process loses at most the
time since the last flush. Thread-safe: the node calls it from subscription, timer and service callbacks.

A full disk stops the recording instead of failing half-way: before each frame the free space is checked (a
reserve stays free for the bag's index, footer and metadata), and the bag is closed normally with everything in
it; a write that fails all the same (another process filled the disk, a quota) returns the bag to its last
flush and closes it there. Either way the caller gets one RecordingStopped and the recorder is idle.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from dense_descriptors_ros.io.bag_writer import COMPRESSED_TYPE, IMAGE_TYPE, ImageBagWriter, jazzy_typestore
from dense_descriptors_ros.io.image_conversion import compressed_to_numpy, image_to_numpy
from dense_descriptors_ros.io.recording_policy import (
    FrameSelector,
    RecordingConfig,
    SelectionCounts,
    SplitPolicy,
    Verdict,
    bag_path,
    session_name,
)
from dense_descriptors_ros.io.stamp_gaps import StampGaps

CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
RESERVE_BYTES = 1 << 20  # kept free on the disk for a bag's index, footer and metadata.yaml


class RecordingStopped(RuntimeError):
    """Writing failed or the disk is full: the bag was closed (see the message for what it keeps) and recording
    stopped."""


class _NoRoom(OSError):
    """The next frame would leave less than RESERVE_BYTES free: nothing failed yet."""


class BagRecorder:
    """Selects frames of ``image_topic`` and writes them, with the newest ``camera_info_topic`` message, to bags."""

    def __init__(self, config: RecordingConfig, image_topic: str, camera_info_topic: str | None = None) -> None:
        self.config = config
        self.image_topic = image_topic
        self.camera_info_topic = camera_info_topic if config.record_camera_info else None
        self.output_dir = Path(config.output_dir).expanduser()
        self.msgtype = COMPRESSED_TYPE if config.compressed else IMAGE_TYPE
        self.selector = FrameSelector(config)
        self.gaps = StampGaps()  # frames lost before they reached the recorder
        self.last_problem = ""  # why the last undecodable frame could not be used
        self.split_policy = SplitPolicy.from_config(config)
        self.bags: list[Path] = []  # bags of the current (or last) session, in order
        self.frames_per_bag: list[int] = []
        self._typestore = jazzy_typestore()
        self._lock = threading.Lock()
        self._writer: ImageBagWriter | None = None
        self._session = ""
        self._bag_start_ns: int | None = None
        self._camera_info: tuple[int, bytes] | None = None  # newest (receive ns, raw)
        self._camera_info_pending = False  # newest one not yet in the current bag

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def counts(self) -> SelectionCounts:
        return self.selector.counts

    @property
    def current_bag(self) -> Path | None:
        return self._writer.path if self._writer is not None else None

    @property
    def has_camera_info(self) -> bool:
        """Whether a camera model has arrived (the newest one goes into each bag ahead of its next frame)."""
        with self._lock:
            return self._camera_info is not None

    def start(self, now: datetime.datetime | None = None) -> Path:
        """Open the first bag of a new session (named after ``now``, local time); returns its folder."""
        with self._lock:
            if self._writer is not None:
                raise RuntimeError(f"already recording to {self._writer.path}")
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._session = session_name(self.config.bag_prefix, now or datetime.datetime.now(), self.output_dir)
            self.bags, self.frames_per_bag = [], []
            self.selector.reset()
            self._open_bag()
            return self.bags[-1]

    def split(self) -> Path:
        """Close the current bag and continue in the next numbered one; returns the new folder."""
        with self._lock:
            if self._writer is None:
                raise RuntimeError("not recording")
            with self._stopping_on_write_errors():
                writer, self._writer = self._writer, None
                writer.close()
                self._open_bag()
            return self.bags[-1]

    def stop(self) -> list[Path]:
        """Close the current bag (writes its metadata.yaml); returns the session's bags. No-op when stopped."""
        with self._lock:
            if self._writer is not None:
                with self._stopping_on_write_errors():
                    self._writer.close()
                self._writer = None
            return list(self.bags)

    def flush(self) -> None:
        """Make everything written so far survive a kill of this process."""
        with self._lock:
            if self._writer is not None:
                with self._stopping_on_write_errors():
                    self._writer.flush()

    def offer_camera_info(self, raw: bytes, receive_ns: int) -> None:
        """Remember the newest camera_info; it is written just before the next kept frame."""
        with self._lock:
            self._camera_info = (receive_ns, bytes(raw))
            self._camera_info_pending = True

    def offer_image(self, raw: bytes, receive_ns: int) -> Verdict | None:
        """Judge one serialised image message received at ``receive_ns`` and write it if kept; None when stopped."""
        with self._lock:
            if self._writer is None:
                return None
            try:
                msg = self._typestore.deserialize_cdr(raw, self.msgtype)
            except Exception as exc:  # rosbags raises several types for bad CDR
                self.last_problem = f"not a {self.msgtype} message: {exc}"
                self.selector.counts.add(Verdict.UNDECODABLE)
                return Verdict.UNDECODABLE
            header_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            stamp = (header_ns or receive_ns) * 1e-9
            self.gaps.add(stamp)
            verdict = self.selector.select(stamp, lambda: self._decode(msg))
            if verdict is Verdict.KEPT:
                try:
                    with self._stopping_on_write_errors():
                        self._write_frame(bytes(raw), receive_ns)
                except RecordingStopped:
                    self.selector.counts.kept -= 1  # selected, but in no bag
                    raise
            return verdict

    def summary(self) -> str:
        bags = ", ".join(f"{p.name} ({n} frames)" for p, n in zip(self.bags, self.frames_per_bag, strict=True))
        return f"{self.counts.summary()}; bag(s) in {self.output_dir}: {bags or 'none'}"

    # --- under the lock ---------------------------------------------------------------------------------------
    def _decode(self, msg: object) -> object:
        try:
            return compressed_to_numpy(msg) if self.config.compressed else image_to_numpy(msg)
        except ValueError as exc:
            self.last_problem = str(exc)
            raise

    def _open_bag(self) -> None:
        path = bag_path(self.output_dir, self._session, len(self.bags))
        writer = ImageBagWriter(
            path, topic=self.image_topic, storage=self.config.storage, compressed=self.config.compressed
        )
        writer.open()
        if self.camera_info_topic is not None:
            writer.add_topic(self.camera_info_topic, CAMERA_INFO_TYPE)
        self._writer = writer
        self.bags.append(path)
        self.frames_per_bag.append(0)
        self._bag_start_ns = None
        self._camera_info_pending = self._camera_info is not None  # every bag starts with the camera model

    @contextlib.contextmanager
    def _stopping_on_write_errors(self) -> Iterator[None]:
        """Turn a full disk or a failed write into a closed bag, an idle recorder and one RecordingStopped."""
        try:
            yield
        except _NoRoom as exc:
            writer, self._writer = self._writer, None
            try:
                writer.close()  # nothing failed: the bag keeps every frame
            except (OSError, sqlite3.Error):
                self.frames_per_bag[-1] = writer.close_at_last_flush()
            raise RecordingStopped(f"recording stopped: {exc}; {self._kept()}") from None
        except (OSError, sqlite3.Error) as exc:
            writer, self._writer = self._writer, None
            if writer is not None:
                self.frames_per_bag[-1] = writer.close_at_last_flush()
            raise RecordingStopped(f"recording stopped: writing failed ({exc}); {self._kept()}") from None

    def _kept(self) -> str:
        return f"{self.bags[-1]} is closed with {self.frames_per_bag[-1]} frame(s)" if self.bags else "no bag"

    def _check_room(self, incoming: int) -> None:
        assert self._writer is not None
        free = shutil.disk_usage(self._writer.path).free
        need = incoming + self._writer.unflushed_bytes + RESERVE_BYTES
        if free < need:
            raise _NoRoom(
                errno.ENOSPC,
                f"No space left on device for the next frame ({free / 1e6:.1f} MB free, {need / 1e6:.1f} MB needed "
                f"with {RESERVE_BYTES / 1e6:.1f} MB kept for the bag's index)",
            )

    def _write_frame(self, raw: bytes, receive_ns: int) -> None:
        assert self._writer is not None
        self._check_room(len(raw))
        if self.split_policy.should_split(self._writer.bytes_written, self._bag_start_ns, len(raw), receive_ns):
            self._writer.close()
            self._open_bag()
        if self._camera_info_pending and self.camera_info_topic is not None and self._camera_info is not None:
            self._writer.write_raw(self.camera_info_topic, *self._camera_info)
            self._camera_info_pending = False
        self._writer.write_raw(self.image_topic, receive_ns, raw)
        self._bag_start_ns = receive_ns if self._bag_start_ns is None else self._bag_start_ns
        self.frames_per_bag[-1] += 1
