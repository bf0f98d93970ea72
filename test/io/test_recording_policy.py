"""Frame selection verdicts and counts, the split policy and bag names (io/recording_policy.py)."""

import datetime

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.io.recording_policy import (
    FrameSelector,
    RecordingConfig,
    SplitPolicy,
    Verdict,
    bag_path,
    motion_between,
    session_name,
    sharpness,
)


def _select_all(selector: FrameSelector, frames: list[tuple[float, np.ndarray]]) -> list[Verdict]:
    return [selector.select(t, lambda image=image: image) for t, image in frames]


def test_max_rate_keeps_the_requested_rate_despite_jitter(blob_texture):
    rng = np.random.default_rng(0)
    selector = FrameSelector(RecordingConfig(max_rate=10.0, min_motion=0.0, blur_ratio=0.0))
    image = blob_texture(1)
    stamps = np.arange(90) / 30.0 + rng.uniform(-0.003, 0.003, 90)  # 3 s of a jittery 30 Hz camera
    verdicts = _select_all(selector, [(t, image) for t in stamps])
    kept = [t for t, v in zip(stamps, verdicts, strict=True) if v is Verdict.KEPT]
    assert len(kept) == 30
    np.testing.assert_allclose(np.diff(kept), 0.1, atol=0.01)
    assert selector.counts.skipped_rate == 60 and selector.counts.received == 90


def test_rate_schedule_restarts_when_stamps_go_back(blob_texture):
    selector = FrameSelector(RecordingConfig(max_rate=1.0, min_motion=0.0, blur_ratio=0.0))
    image = blob_texture(2)
    verdicts = _select_all(selector, [(100.0, image), (100.5, image), (10.0, image), (10.5, image)])
    assert verdicts == [Verdict.KEPT, Verdict.RATE, Verdict.KEPT, Verdict.RATE]


def test_near_duplicates_are_skipped_but_motion_and_exposure_are_told_apart(blob_texture):
    rng = np.random.default_rng(3)
    base = blob_texture(3).astype(np.int16)

    def noisy(image: np.ndarray) -> np.ndarray:
        return np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8)

    brighter = base * 0.8 + 30  # exposure: gain and offset
    shifted = np.roll(base, 4, axis=1)  # a small camera pan
    selector = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=2.0, blur_ratio=0.0))
    frames = [noisy(base), noisy(base), noisy(brighter), noisy(shifted), noisy(shifted)]
    verdicts = _select_all(selector, list(enumerate(frames)))
    assert verdicts == [Verdict.KEPT, Verdict.DUPLICATE, Verdict.DUPLICATE, Verdict.KEPT, Verdict.DUPLICATE]
    assert selector.counts.skipped_duplicate == 3 and selector.counts.kept == 2
    assert motion_between(base.astype(np.float32), brighter.astype(np.float32)) < 0.5


def test_blurry_frames_are_skipped_relative_to_recent_ones_and_by_absolute_floor(blob_texture):
    selector = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=1.0, blur_ratio=0.5))
    sharp_frames = [blob_texture(10 + i) for i in range(6)]
    blurred = cv2.GaussianBlur(blob_texture(20), (0, 0), 3.0)
    verdicts = _select_all(selector, list(enumerate([*sharp_frames, blurred, blob_texture(21)])))
    assert verdicts == [Verdict.KEPT] * 6 + [Verdict.BLUR, Verdict.KEPT]
    assert selector.counts.skipped_blur == 1
    assert sharpness(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY).astype(np.float32)) < 0.5 * sharpness(
        cv2.cvtColor(sharp_frames[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
    )

    # A textureless scene is not blur: the relative test compares with that scene's own recent frames.
    flat = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=0.0, blur_ratio=0.5))
    soft = [cv2.GaussianBlur(blob_texture(30 + i), (0, 0), 3.0) for i in range(8)]
    assert _select_all(flat, list(enumerate(soft))) == [Verdict.KEPT] * 8
    floor = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=0.0, blur_ratio=0.0, min_sharpness=1e6))
    assert _select_all(floor, [(0.0, sharp_frames[0])]) == [Verdict.BLUR]


def test_undecodable_frames_are_counted(keep_all):
    selector = FrameSelector(RecordingConfig(**keep_all))

    def broken() -> np.ndarray:
        raise ValueError("unsupported image encoding")

    assert selector.select(0.0, broken) is Verdict.UNDECODABLE
    assert selector.counts.undecodable == 1 and selector.counts.received == 1
    assert "1 undecodable" in selector.counts.summary()


def test_split_policy():
    policy = SplitPolicy.from_config(RecordingConfig(split_size_mb=1.0, split_duration=2.0))
    assert policy == SplitPolicy(max_bytes=1_000_000, max_duration_ns=2_000_000_000)
    assert not policy.should_split(0, None, 5_000_000, 10**9)  # an empty bag takes any message
    assert policy.should_split(900_000, 0, 200_000, 10)
    assert not policy.should_split(700_000, 0, 200_000, 1_999_999_999)
    assert policy.should_split(10, 0, 10, 2_000_000_000)
    assert not SplitPolicy().should_split(10**12, 0, 10**9, 10**15)


def test_bag_names_are_numbered_and_never_collide(tmp_path):
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert session_name("rec", when, tmp_path) == "rec_20260102-030405"
    assert bag_path(tmp_path, "rec_20260102-030405", 7) == tmp_path / "rec_20260102-030405_007"
    (tmp_path / "rec_20260102-030405_000").mkdir()
    assert session_name("rec", when, tmp_path) == "rec_20260102-030405-1"
    with pytest.raises(ValueError, match="bag_prefix"):
        session_name("a/b", when, tmp_path)


def test_invalid_config_is_rejected_with_the_key_named():
    with pytest.raises(ConfigError, match="storage"):
        from_mapping(RecordingConfig, {"storage": "rosbag1"})
    with pytest.raises(ConfigError, match="flush_period"):
        from_mapping(RecordingConfig, {"flush_period": 5.0})
