"""BagRecorder without ROS: serialized messages in, readable bags out (splits, flushes, compressed images)."""

import datetime
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from dense_descriptors_ros.io.bag_recorder import CAMERA_INFO_TYPE, BagRecorder
from dense_descriptors_ros.io.bag_writer import ImageBagWriter, jazzy_typestore
from dense_descriptors_ros.io.frame_sources import open_frame_source
from dense_descriptors_ros.io.recording_policy import RecordingConfig, Verdict


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
def test_bag_recorder_splits_by_size_into_readable_bags(tmp_path, storage, blob_texture, keep_all):
    config = RecordingConfig(output_dir=str(tmp_path), storage=storage, split_size_mb=0.15, **keep_all)
    recorder = BagRecorder(config, "/cam/image", "/cam/camera_info")
    frames = [(10.0 + i, blob_texture(100 + i)) for i in range(6)]  # 57.6 kB each: 2 per bag
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
def test_flushed_frames_survive_an_unclosed_bag(tmp_path, storage, blob_texture, keep_all):
    """What a SIGKILL leaves: the flushed messages in the storage file and the metadata.yaml of that flush; rosbags
    reads a sqlite3 bag as it is, an mcap one (no summary and footer yet) is salvaged by our frame source."""
    config = RecordingConfig(output_dir=str(tmp_path), storage=storage, **keep_all)
    recorder = BagRecorder(config, "/image")
    frames = [(1.0 + i, blob_texture(200 + i)) for i in range(4)]
    bag = recorder.start()
    for i, (stamp, image) in enumerate(frames):
        recorder.offer_image(_serialised_image(stamp, image), 10**9 * (i + 1))
    recorder.flush()
    read = open_frame_source(bag).read_all()  # read while the writer is still open, as after a crash
    assert [t for t, _ in read] == [t for t, _ in frames]
    np.testing.assert_array_equal(read[-1][1], frames[-1][1])
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["message_count"] == 4
    if storage == "sqlite3":
        with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
            assert len(list(reader.messages())) == 4
    recorder.stop()
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        assert len(list(reader.messages())) == reader.message_count == 4


def test_compressed_images_are_recorded_as_sent(tmp_path, blob_texture, keep_all):
    config = RecordingConfig(output_dir=str(tmp_path), compressed=True, **keep_all)
    recorder = BagRecorder(config, "/image/compressed")
    image = blob_texture(300)
    raw = _serialised_image(4.0, image, compressed=True)
    bag = recorder.start()
    assert recorder.offer_image(raw, 4) is Verdict.KEPT
    recorder.stop()
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        assert [bytes(data) for _, _, data in reader.messages()] == [raw]  # byte for byte
    ((stamp, got),) = open_frame_source(bag).read_all()
    assert stamp == 4.0
    np.testing.assert_array_equal(got, image)  # png: lossless


_FAILING_DISK_SCRIPT = """
import resource, sys
import numpy as np
from dense_descriptors_ros.io.bag_recorder import BagRecorder, RecordingStopped
from dense_descriptors_ros.io.bag_writer import ImageBagWriter, jazzy_typestore
from dense_descriptors_ros.io.recording_policy import RecordingConfig

# Files of this process may not grow past 3 MB: a write fails (EFBIG) the way it fails on a full disk, while the
# free-space check sees plenty of room. Python ignores SIGXFSZ, so the write returns the error.
resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, resource.RLIM_INFINITY))
out, storage = sys.argv[1], sys.argv[2]
config = RecordingConfig(output_dir=out, storage=storage, max_rate=0.0, min_motion=0.0, blur_ratio=0.0)
recorder = BagRecorder(config, "/cam/image")
recorder.start()
writer = ImageBagWriter("/nonexistent")
for i in range(12):  # 921 kB each; flushed after every second frame
    image = np.random.default_rng(i).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    raw = jazzy_typestore().serialize_cdr(writer.message(10.0 + i, image), writer.msgtype)
    try:
        recorder.offer_image(raw, 10**9 * (10 + i))
        if i % 2:
            recorder.flush()
    except RecordingStopped as exc:
        print(exc)
        break
print("recording" if recorder.recording else "stopped", recorder.frames_per_bag)
"""


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_failing_write_closes_the_bag_as_it_was_at_the_last_flush(tmp_path, storage):
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_DISK_SCRIPT, str(tmp_path), storage],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    message, state = done.stdout.strip().splitlines()
    assert message.startswith("recording stopped: writing failed") and message.endswith("closed with 2 frame(s)")
    assert state == "stopped [2]", done.stdout
    (bag,) = tmp_path.iterdir()
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp.sec for c, _, raw in reader.messages()]
        assert reader.message_count == len(stamps) == 2
    assert [t for t, _ in open_frame_source(bag)] == [10.0, 11.0]
