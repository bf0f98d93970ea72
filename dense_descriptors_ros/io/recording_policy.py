"""What the recorder keeps and where it writes it, free of ROS: frame selection, bag splits and bag names.

Frame selection, cheapest test first: a maximum rate (on the image stamps), then near-duplicates (too little
motion since the last kept frame: mean absolute difference of small grey thumbnails after matching their
brightness and contrast, so an auto-exposure change alone does not count as motion), then blur (variance of the
Laplacian of the thumbnail, below an absolute floor or below a fraction of the median of the recent frames, so a
textureless scene is not rejected as a whole). Every frame gets one verdict and every verdict is counted.
"""

from __future__ import annotations

import collections
import datetime
import enum
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dense_descriptors_ros.io.bag_writer import STORAGES
from dense_descriptors_ros.io.image_conversion import to_rgb8

SHARPNESS_HISTORY = 30  # frames in the running median of the relative blur test
MIN_HISTORY = 5  # the relative blur test starts once this many frames were measured


@dataclass
class RecordingConfig:
    """Recorder settings shared by the recorder node (as ROS parameters) and its library."""

    output_dir: str = field(default="recordings", metadata={"help": "folder the bags are written into (created)"})
    bag_prefix: str = field(
        default="recording", metadata={"help": "bag names are <prefix>_<YYYYmmdd-HHMMSS>_<NNN> (NNN counts splits)"}
    )
    storage: str = field(default="mcap", metadata={"help": "rosbag2 storage", "choices": tuple(STORAGES)})
    compressed: bool = field(
        default=False, metadata={"help": "subscribe image as sensor_msgs/CompressedImage instead of Image"}
    )
    record_camera_info: bool = field(
        default=True, metadata={"help": "also record camera_info (the newest one, next to each kept frame)"}
    )
    max_rate: float = field(
        default=10.0, metadata={"help": "most frames kept per second of stamps (0 = no limit)", "range": (0, 1000)}
    )
    min_motion: float = field(
        default=2.0,
        metadata={
            "help": "skip a frame whose mean abs grey difference to the last kept one is below this (0 = off)",
            "range": (0, 255),
        },
    )
    min_sharpness: float = field(
        default=0.0,
        metadata={"help": "skip a frame whose variance of Laplacian is below this (0 = off)", "range": (0, 1e9)},
    )
    blur_ratio: float = field(
        default=0.5,
        metadata={
            "help": "skip a frame less sharp than this fraction of the median of recent frames (0 = off)",
            "range": (0, 1),
        },
    )
    analysis_width: int = field(
        default=160, metadata={"help": "width of the grey thumbnail for motion and blur", "range": (16, 4096)}
    )
    split_size_mb: float = field(
        default=0.0, metadata={"help": "start a new bag after this many MB of messages (0 = never)", "range": (0, 1e7)}
    )
    split_duration: float = field(
        default=0.0, metadata={"help": "start a new bag after this many seconds (0 = never)", "range": (0, 1e7)}
    )
    flush_period: float = field(
        default=0.5,
        metadata={
            "help": "seconds between flushes to disk; a killed recorder loses at most this much",
            "range": (0.05, 1.0),
        },
    )


class Verdict(enum.Enum):
    KEPT = "kept"
    RATE = "skipped_rate"
    DUPLICATE = "skipped_duplicate"
    BLUR = "skipped_blur"
    UNDECODABLE = "undecodable"


@dataclass
class SelectionCounts:
    received: int = 0
    kept: int = 0
    skipped_rate: int = 0
    skipped_duplicate: int = 0
    skipped_blur: int = 0
    undecodable: int = 0

    def add(self, verdict: Verdict) -> None:
        self.received += 1
        setattr(self, verdict.value, getattr(self, verdict.value) + 1)

    def summary(self) -> str:
        return (
            f"{self.received} frame(s) received, {self.kept} kept; skipped: {self.skipped_rate} over max_rate, "
            f"{self.skipped_duplicate} near-duplicate, {self.skipped_blur} blurry, {self.undecodable} undecodable"
        )


def grey_thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    """float32 grey image ``width`` pixels wide (area-averaged, which also averages out sensor noise)."""
    rgb = to_rgb8(image)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    if w > width:
        grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def motion_between(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two grey thumbnails, in grey levels of ``a``, after matching ``b``'s brightness
    and contrast to ``a``'s (so an exposure or gain change alone is no motion)."""
    if a.shape != b.shape:
        return float("inf")  # the image size changed: certainly not a duplicate
    a0, b0 = a - a.mean(), b - b.mean()
    sa, sb = float(a0.std()), float(b0.std())
    if sa > 1e-3 and sb > 1e-3:
        b0 = b0 * (sa / sb)
    return float(np.mean(np.abs(a0 - b0)))


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian (higher = sharper)."""
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class FrameSelector:
    """Decides for each frame whether it is kept; ``counts`` tallies the verdicts."""

    def __init__(self, config: RecordingConfig) -> None:
        self.config = config
        self._period = 1.0 / config.max_rate if config.max_rate > 0 else 0.0
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames and zero the counts (a new recording)."""
        self.counts = SelectionCounts()
        self._next_due: float | None = None
        self._last_kept: np.ndarray | None = None
        self._sharpness: collections.deque[float] = collections.deque(maxlen=SHARPNESS_HISTORY)

    def select(self, stamp: float, decode: Callable[[], np.ndarray]) -> Verdict:
        """Verdict for the frame stamped ``stamp`` (seconds); ``decode`` is called only if the rate allows it."""
        verdict = self._judge(stamp, decode)
        self.counts.add(verdict)
        return verdict

    def _judge(self, stamp: float, decode: Callable[[], np.ndarray]) -> Verdict:
        if not self._rate_allows(stamp):
            return Verdict.RATE
        try:
            thumb = grey_thumbnail(decode(), self.config.analysis_width)
        except ValueError:
            return Verdict.UNDECODABLE
        last = self._last_kept
        if last is not None and self.config.min_motion > 0 and motion_between(thumb, last) < self.config.min_motion:
            return Verdict.DUPLICATE
        sharp = sharpness(thumb)
        recent = statistics.median(self._sharpness) if len(self._sharpness) >= MIN_HISTORY else None
        self._sharpness.append(sharp)
        if sharp < self.config.min_sharpness or (recent is not None and sharp < self.config.blur_ratio * recent):
            return Verdict.BLUR
        self._last_kept = thumb
        self._advance_rate(stamp)
        return Verdict.KEPT

    def _rate_allows(self, stamp: float) -> bool:
        if self._next_due is None or self._period == 0:
            return True
        if stamp < self._next_due - self._period:  # stamps went back (a replayed bag restarted): start over
            self._next_due = None
            return True
        # A tenth of a period of slack so camera jitter does not halve the rate (e.g. 30 Hz in, 10 Hz out).
        return stamp >= self._next_due - 0.1 * self._period

    def _advance_rate(self, stamp: float) -> None:
        if self._period == 0:
            return
        if self._next_due is None or stamp - self._next_due >= self._period:
            self._next_due = stamp + self._period  # first frame, or after a gap: restart the schedule
        else:
            self._next_due += self._period


@dataclass
class SplitPolicy:
    """When to close the current bag and open the next one: size (bytes) or duration (ns), 0 = never."""

    max_bytes: int = 0
    max_duration_ns: int = 0

    @classmethod
    def from_config(cls, config: RecordingConfig) -> SplitPolicy:
        return cls(round(config.split_size_mb * 1e6), round(config.split_duration * 1e9))

    def should_split(self, bag_bytes: int, bag_start_ns: int | None, incoming_bytes: int, now_ns: int) -> bool:
        """True when writing ``incoming_bytes`` at ``now_ns`` into the current (non-empty) bag would exceed a limit."""
        if bag_start_ns is None:  # an empty bag takes the message whatever its size
            return False
        too_big = self.max_bytes > 0 and bag_bytes + incoming_bytes > self.max_bytes
        too_long = self.max_duration_ns > 0 and now_ns - bag_start_ns >= self.max_duration_ns
        return too_big or too_long


def session_name(prefix: str, when: datetime.datetime, output_dir: Path) -> str:
    """``<prefix>_<YYYYmmdd-HHMMSS>``, with ``-1``, ``-2``... when bags of that name already exist in ``output_dir``."""
    if not prefix or "/" in prefix:
        raise ValueError(f"bag_prefix must be a non-empty name without '/', got {prefix!r}")
    base = f"{prefix}_{when:%Y%m%d-%H%M%S}"
    name, n = base, 0
    while any(output_dir.glob(f"{name}_[0-9][0-9][0-9]")):
        n += 1
        name = f"{base}-{n}"
    return name


def bag_path(output_dir: Path, session: str, index: int) -> Path:
    """The folder of bag number ``index`` (0, 1, ... one per split) of a recording session."""
    return output_dir / f"{session}_{index:03d}"
