"""recorder_node with real rclpy: publisher -> recorder -> bag -> frame source; skip counts; services; kills.

The kill tests start the node as its own process (python -m ...) and publish from this one, so they need
cross-process DDS: run them with scripts/run_tests.sh (private network namespace, own ROS_DOMAIN_ID).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from dense_descriptors_ros.io.bag_writer import jazzy_typestore
from dense_descriptors_ros.io.frame_sources import open_frame_source
from dense_descriptors_ros.io.image_conversion import numpy_to_compressed, numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.recorder_node import RecorderNode

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
KEEP_ALL = {"max_rate": 0.0, "min_motion": 0.0, "blur_ratio": 0.0}
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def _texture(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def _image_msg(image: np.ndarray, sec: int, nanosec: int = 0) -> Image:
    msg = numpy_to_image(image, "rgb8")
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    msg.header.frame_id = "camera_optical"
    return msg


def _start(ros, tmp_path, **params):
    values = {"output_dir": str(tmp_path / "bags"), "image_qos": "reliable", **params}
    node = RecorderNode(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    ros.add(node)
    node.trigger_configure()
    node.trigger_activate()
    return node


def _publish_all(ros, node, msgs, msg_type=Image) -> None:
    """Publish ``msgs`` on image and wait until the recorder has judged every one."""
    pub = ros.node(f"camera_{len(ros.nodes)}").create_publisher(msg_type, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=20)
    before = node.recorder.counts.received
    for msg in msgs:
        pub.publish(msg)
        time.sleep(0.01)
    assert wait_for(lambda: node.recorder.counts.received == before + len(msgs), timeout=20), node.recorder.summary()


def _call(ros, service: str) -> Trigger.Response:
    client = ros.node(f"client_{len(ros.nodes)}").create_client(Trigger, service)
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=10)
    return future.result()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_gives_identical_pixels_stamps_and_camera_info(ros, tmp_path, storage):
    node = _start(ros, tmp_path, storage=storage, **KEEP_ALL)
    info_pub = ros.node("camera_info").create_publisher(CameraInfo, "camera_info", RELIABLE)
    assert wait_for(lambda: info_pub.get_subscription_count() > 0, timeout=20)
    info_pub.publish(CameraInfo(width=64, height=48, distortion_model="plumb_bob", k=[50.0, 0, 32, 0, 50, 24, 0, 0, 1]))
    assert wait_for(lambda: node.recorder.has_camera_info, timeout=10)
    frames = [(_texture(i), 1000 + i, 1000 * i) for i in range(8)]
    _publish_all(ros, node, [_image_msg(image, sec, ns) for image, sec, ns in frames])
    bag = node.recorder.current_bag
    response = _call(ros, "/recorder_node/stop")
    assert response.success and "8 kept" in response.message
    read = open_frame_source(bag).read_all()
    assert [t for t, _ in read] == pytest.approx([sec + ns * 1e-9 for _, sec, ns in frames], abs=1e-9)
    for (_, got), (sent, _, _) in zip(read, frames, strict=True):
        np.testing.assert_array_equal(got, sent)
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:  # closed: metadata.yaml, no salvage
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {"/image": "sensor_msgs/msg/Image", "/camera_info": "sensor_msgs/msg/CameraInfo"}
        (info_conn,) = [c for c in reader.connections if c.topic == "/camera_info"]
        ((_, _, raw),) = list(reader.messages(connections=[info_conn]))
        info = reader.deserialize(raw, info_conn.msgtype)
        assert (info.width, info.height, info.k[0]) == (64, 48, 50.0)


def test_duplicates_and_blurry_frames_are_skipped_and_counted(ros, tmp_path):
    node = _start(ros, tmp_path, max_rate=0.0, min_motion=2.0, blur_ratio=0.5)
    sharp = [_texture(10 + i, 96, 128) for i in range(6)]
    blurred = cv2.GaussianBlur(_texture(30, 96, 128), (0, 0), 3.0)
    sequence = [sharp[0], sharp[0], sharp[1], sharp[2], sharp[2], sharp[3], sharp[4], sharp[5], blurred]
    _publish_all(ros, node, [_image_msg(image, 50 + i) for i, image in enumerate(sequence)])
    counts = node.recorder.counts
    assert (counts.kept, counts.skipped_duplicate, counts.skipped_blur) == (6, 2, 1)
    bag = node.recorder.current_bag
    assert _call(ros, "/recorder_node/stop").success
    assert [t for t, _ in open_frame_source(bag)] == [50.0, 52.0, 53.0, 55.0, 56.0, 57.0]


def test_start_stop_split_services_and_compressed_input(ros, tmp_path):
    node = _start(ros, tmp_path, record_on_start=False, compressed=True, **KEEP_ALL)
    assert not node.recorder.recording
    assert not _call(ros, "/recorder_node/stop").success
    assert not _call(ros, "/recorder_node/split").success
    started = _call(ros, "/recorder_node/start")
    assert started.success and started.message.endswith("_000")
    assert not _call(ros, "/recorder_node/start").success  # already recording

    def compressed(seed: int, sec: int) -> CompressedImage:
        msg = numpy_to_compressed(_texture(seed), "png")
        msg.header.stamp = Time(sec=sec)
        return msg

    _publish_all(ros, node, [compressed(1, 1), compressed(2, 2)], CompressedImage)
    split = _call(ros, "/recorder_node/split")
    assert split.success and split.message.endswith("_001")
    _publish_all(ros, node, [compressed(3, 3)], CompressedImage)
    assert _call(ros, "/recorder_node/stop").success
    first, second = (Path(started.message), Path(split.message))
    assert [t for t, _ in open_frame_source(first)] == [1.0, 2.0]
    ((stamp, image),) = open_frame_source(second).read_all()
    assert stamp == 3.0
    np.testing.assert_array_equal(image, _texture(3))
    node.trigger_deactivate()
    assert not _call(ros, "/recorder_node/start").success  # inactive: refused


def test_duration_split(ros, tmp_path):
    node = _start(ros, tmp_path, split_duration=0.3, **KEEP_ALL)
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=20)
    for i in range(10):
        pub.publish(_image_msg(_texture(i), 10 + i))
        time.sleep(0.1)
    assert wait_for(lambda: node.recorder.counts.received == 10, timeout=20)
    node.trigger_deactivate()
    bags = node.recorder.bags
    assert len(bags) >= 3, node.recorder.summary()
    stamps = [t for bag in bags for t, _ in open_frame_source(bag)]
    assert stamps == [10.0 + i for i in range(10)]


def _frames_on_disk(out: Path) -> int:
    """Frames a recorder still writing has put into its bag so far (read back as a salvage would)."""
    try:
        (bag,) = sorted(out.iterdir())
        return len(open_frame_source(bag).read_all())
    except (ValueError, OSError, sqlite3.Error):  # no bag yet, a chunk half written, a database being written
        return 0


def _kill_test(
    ros, tmp_path, storage: str, sig: signal.Signals, wait_received: bool = False
) -> tuple[list[float], list[float], Path, float]:
    """Publish frames to a recorder process (optionally until all are on disk), send ``sig``; returns (sent stamps,
    their send times, bag, kill time)."""
    out = tmp_path / "bags"
    params = {"output_dir": out, "storage": storage, "image_qos": "reliable", "flush_period": 0.5, **KEEP_ALL}
    command = [sys.executable, "-m", "dense_descriptors_ros.nodes.recorder_node", "--ros-args"]
    for key, value in params.items():
        command += ["-p", f"{key}:={value}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "recorder.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
        subscribed = wait_for(lambda: pub.get_subscription_count() > 0, timeout=30)
        assert subscribed, f"recorder process did not subscribe; its output:\n{log.read_text()}"
        time.sleep(0.3)  # let the recorder side finish matching this publisher too
        stamps, sent_at = [], []
        for i in range(40):  # 2 s at 20 Hz
            stamps.append(100.0 + i)
            sent_at.append(time.monotonic())
            pub.publish(_image_msg(_texture(i), 100 + i))
            time.sleep(0.05)
        if wait_received:
            # A clean stop must keep everything received, so first let every frame reach the bag (flushed each
            # flush_period; a loaded machine can be seconds behind the publisher).
            assert wait_for(lambda: _frames_on_disk(out) == len(stamps), timeout=30), _frames_on_disk(out)
        killed_at = time.monotonic()
        process.send_signal(sig)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (bag,) = sorted(out.iterdir())
    return stamps, sent_at, bag, killed_at


def _closed(bag: Path) -> bool:
    """Whether the writer finished the bag: an mcap file ends with its footer magic, a sqlite3 one has the
    metadata row rosbags' writer inserts at close (metadata.yaml itself is rewritten at every flush)."""
    (storage,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    if storage.suffix == ".mcap":
        return storage.read_bytes().endswith(b"\x89MCAP0\r\n")
    with sqlite3.connect(storage) as db:
        return db.execute("SELECT count(*) FROM metadata").fetchone()[0] > 0


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sigkilled_recorder_leaves_all_but_the_last_second(ros, tmp_path, storage):
    stamps, sent_at, bag, killed_at = _kill_test(ros, tmp_path, storage, signal.SIGKILL)
    assert not _closed(bag)  # really killed
    read = open_frame_source(bag).read_all()  # salvaged
    got = [t for t, _ in read]
    must_have = [t for t, sent in zip(stamps, sent_at, strict=True) if sent <= killed_at - 1.0]
    assert len(must_have) >= 15
    assert got == stamps[: len(got)] and len(got) >= len(must_have), (len(got), len(must_have))
    for stamp, image in read:
        np.testing.assert_array_equal(image, _texture(int(stamp) - 100))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sigint_closes_the_bag(ros, tmp_path, storage):
    stamps, _, bag, _ = _kill_test(ros, tmp_path, storage, signal.SIGINT, wait_received=True)
    assert _closed(bag)
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        assert reader.message_count == len(stamps)
    assert [t for t, _ in open_frame_source(bag)] == stamps
    log = (tmp_path / "recorder.log").read_text()
    assert "stopped recording: 40 frame(s) received, 40 kept" in log  # the counts are logged at stop


def test_invalid_parameter_or_unwritable_output_dir_fail_the_transition(ros, tmp_path, lifecycle_state):
    bad_storage = ros.add(
        RecorderNode(context=ros.context, parameter_overrides=[Parameter("storage", value="rosbag1")])
    )
    assert bad_storage.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(bad_storage) == "unconfigured"
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    unwritable = RecorderNode(
        "recorder_unwritable",
        context=ros.context,
        parameter_overrides=[Parameter("output_dir", value=str(blocker / "bags"))],
    )
    ros.add(unwritable)
    unwritable.trigger_configure()
    assert unwritable.trigger_activate() == TransitionCallbackReturn.FAILURE
    assert lifecycle_state(unwritable) == "inactive"
    assert not list(unwritable.subscriptions) and not unwritable.recorder.recording
