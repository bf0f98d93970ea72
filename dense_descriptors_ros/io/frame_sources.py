"""Frame sources: iterate ``(stamp_seconds, rgb uint8 (H, W, 3))`` from a video file, an image folder or a rosbag2.

All sources share one selection: ``stride`` (keep every n-th frame), ``start_time`` / ``end_time`` (seconds from
the first frame of the source) and ``max_frames``. Frames that are not selected are not decoded.

Rosbag2 (sqlite3 and mcap; sensor_msgs/msg/Image and CompressedImage) is read with ``rosbags``, no ROS install
needed; a damaged bag is salvaged record by record (io/bag_messages.py).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dense_descriptors_ros.io.bag_messages import BAG_SUFFIXES, BagMessages
from dense_descriptors_ros.io.bag_writer import COMPRESSED_TYPE, IMAGE_TYPE, jazzy_typestore
from dense_descriptors_ros.io.image_conversion import compressed_to_numpy, image_to_numpy, to_rgb8

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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
        with BagMessages(self.path) as messages:
            return {t: m for t, m in messages.topics.items() if m in IMAGE_TYPES}

    def _lazy_frames(self) -> Iterator[LazyFrame]:
        with BagMessages(self.path) as messages:
            images = {t: m for t, m in messages.topics.items() if m in IMAGE_TYPES}
            topic = self._choose_topic(images, messages.topics)
            msgtype = images[topic]
            for receive_ns, raw in messages.read(topic):
                stamp = _header_stamp(raw, receive_ns)
                yield stamp, lambda raw=raw: _decode_message(self.typestore, raw, msgtype)


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
