"""Recorder library without ROS: frame selection verdicts and counts, split policy, bag names, BagRecorder bags."""

import datetime

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.io.bag_recorder import CAMERA_INFO_TYPE, BagRecorder
from dense_descriptors_ros.io.bag_writer import ImageBagWriter, jazzy_typestore
from dense_descriptors_ros.io.frame_sources import open_frame_source
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

KEEP_ALL = {"max_rate": 0.0, "min_motion": 0.0, "blur_ratio": 0.0}


def _texture(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth-ish random RGB texture (blobs), so blur and shifts change it measurably."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _select_all(selector: FrameSelector, frames: list[tuple[float, np.ndarray]]) -> list[Verdict]:
    return [selector.select(t, lambda image=image: image) for t, image in frames]


def test_max_rate_keeps_the_requested_rate_despite_jitter():
    rng = np.random.default_rng(0)
    selector = FrameSelector(RecordingConfig(max_rate=10.0, min_motion=0.0, blur_ratio=0.0))
    image = _texture(1)
    stamps = np.arange(90) / 30.0 + rng.uniform(-0.003, 0.003, 90)  # 3 s of a jittery 30 Hz camera
    verdicts = _select_all(selector, [(t, image) for t in stamps])
    kept = [t for t, v in zip(stamps, verdicts, strict=True) if v is Verdict.KEPT]
    assert len(kept) == 30
    np.testing.assert_allclose(np.diff(kept), 0.1, atol=0.01)
    assert selector.counts.skipped_rate == 60 and selector.counts.received == 90


def test_rate_schedule_restarts_when_stamps_go_back():
    selector = FrameSelector(RecordingConfig(max_rate=1.0, min_motion=0.0, blur_ratio=0.0))
    image = _texture(2)
    verdicts = _select_all(selector, [(100.0, image), (100.5, image), (10.0, image), (10.5, image)])
    assert verdicts == [Verdict.KEPT, Verdict.RATE, Verdict.KEPT, Verdict.RATE]


def test_near_duplicates_are_skipped_but_motion_and_exposure_are_told_apart():
    rng = np.random.default_rng(3)
    base = _texture(3).astype(np.int16)

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


def test_blurry_frames_are_skipped_relative_to_recent_ones_and_by_absolute_floor():
    selector = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=1.0, blur_ratio=0.5))
    sharp_frames = [_texture(10 + i) for i in range(6)]
    blurred = cv2.GaussianBlur(_texture(20), (0, 0), 3.0)
    verdicts = _select_all(selector, list(enumerate([*sharp_frames, blurred, _texture(21)])))
    assert verdicts == [Verdict.KEPT] * 6 + [Verdict.BLUR, Verdict.KEPT]
    assert selector.counts.skipped_blur == 1
    assert sharpness(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY).astype(np.float32)) < 0.5 * sharpness(
        cv2.cvtColor(sharp_frames[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
    )

    # A textureless scene is not blur: the relative test compares with that scene's own recent frames.
    flat = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=0.0, blur_ratio=0.5))
    soft = [cv2.GaussianBlur(_texture(30 + i), (0, 0), 3.0) for i in range(8)]
    assert _select_all(flat, list(enumerate(soft))) == [Verdict.KEPT] * 8
    floor = FrameSelector(RecordingConfig(max_rate=0.0, min_motion=0.0, blur_ratio=0.0, min_sharpness=1e6))
    assert _select_all(floor, [(0.0, sharp_frames[0])]) == [Verdict.BLUR]


def test_undecodable_frames_are_counted():
    selector = FrameSelector(RecordingConfig(**KEEP_ALL))

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


def _serialised_image(stamp: float, image: np.ndarray, compressed: bool = False) -> bytes:
    writer = ImageBagWriter("/nonexistent", compressed=compressed, compressed_format="png")
    msg = writer.message(stamp, image)
    return jazzy_typestore().serialize_cdr(msg, writer.msgtype)


def _serialised_camera_info(width: int) -> bytes:
    store = jazzy_typestore()
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = types[CAMERA_INFO_TYPE](
        header=header,
        height=120,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.eye(3).ravel(),
        r=np.eye(3).ravel(),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
    return store.serialize_cdr(info, CAMERA_INFO_TYPE)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_recorder_splits_by_size_into_readable_bags(tmp_path, storage):
    config = RecordingConfig(output_dir=str(tmp_path), storage=storage, split_size_mb=0.15, **KEEP_ALL)
    recorder = BagRecorder(config, "/cam/image", "/cam/camera_info")
    frames = [(10.0 + i, _texture(100 + i)) for i in range(6)]  # 57.6 kB each: 2 per bag
    recorder.start(datetime.datetime(2026, 1, 2, 3, 4, 5))
    recorder.offer_camera_info(_serialised_camera_info(160), 5)
    for i, (stamp, image) in enumerate(frames):
        assert recorder.offer_image(_serialised_image(stamp, image), 10**9 * (i + 10)) is Verdict.KEPT
    assert recorder.offer_image(b"\x00\x01garbage", 10**9 * 20) is Verdict.UNDECODABLE
    bags = recorder.stop()
    assert [b.name for b in bags] == [f"recording_20260102-030405_{i:03d}" for i in range(3)]
    assert recorder.frames_per_bag == [2, 2, 2]
    read = [frame for bag in bags for frame in open_frame_source(bag)]
    assert [t for t, _ in read] == [t for t, _ in frames]
    for (_, got), (_, sent) in zip(read, frames, strict=True):
        np.testing.assert_array_equal(got, sent)
    for bag in bags:  # every bag starts with the camera model
        with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
            first = next(reader.messages())[0]
            assert (first.topic, first.msgtype) == ("/cam/camera_info", CAMERA_INFO_TYPE)
            assert reader.topics["/cam/camera_info"].msgcount == 1
    assert "6 kept" in recorder.summary() and "1 undecodable" in recorder.summary()
    assert recorder.offer_image(_serialised_image(30.0, frames[0][1]), 30) is None  # stopped: ignored


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_flushed_frames_survive_an_unclosed_bag(tmp_path, storage):
    """What a SIGKILL leaves: flushed messages are in the file, metadata.yaml is missing; the salvage reads them."""
    config = RecordingConfig(output_dir=str(tmp_path), storage=storage, **KEEP_ALL)
    recorder = BagRecorder(config, "/image")
    frames = [(1.0 + i, _texture(200 + i)) for i in range(4)]
    bag = recorder.start()
    for i, (stamp, image) in enumerate(frames):
        recorder.offer_image(_serialised_image(stamp, image), 10**9 * (i + 1))
    recorder.flush()
    read = open_frame_source(bag).read_all()  # read while the writer is still open, as after a crash
    assert not (bag / "metadata.yaml").exists()
    assert [t for t, _ in read] == [t for t, _ in frames]
    np.testing.assert_array_equal(read[-1][1], frames[-1][1])
    recorder.stop()
    assert (bag / "metadata.yaml").is_file()


def test_compressed_images_are_recorded_as_sent(tmp_path):
    config = RecordingConfig(output_dir=str(tmp_path), compressed=True, **KEEP_ALL)
    recorder = BagRecorder(config, "/image/compressed")
    image = _texture(300)
    raw = _serialised_image(4.0, image, compressed=True)
    bag = recorder.start()
    assert recorder.offer_image(raw, 4) is Verdict.KEPT
    recorder.stop()
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        assert [bytes(data) for _, _, data in reader.messages()] == [raw]  # byte for byte
    ((stamp, got),) = open_frame_source(bag).read_all()
    assert stamp == 4.0
    np.testing.assert_array_equal(got, image)  # png: lossless
