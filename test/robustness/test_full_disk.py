"""A full disk stops the recording with one error line, not a traceback: the recorder stays up (idle) and leaves a
bag that rosbags and our frame source both read, with metadata that counts exactly what is in it.

The recorder runs in its own mount namespace (`unshare -rm`) on an 8 MB tmpfs; this process reads the bag through
/proc/<pid>/root while the recorder is still running.
"""

import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.bag_writer import jazzy_typestore
from dense_descriptors_ros.io.frame_sources import open_frame_source
from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros
KEEP_ALL = {"max_rate": 0.0, "min_motion": 0.0, "blur_ratio": 0.0}


def _own_mount_namespace_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _frame(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_full_disk_stops_recording_and_leaves_a_readable_bag(ros, start_node, tmp_path, storage):
    if not _own_mount_namespace_works():
        pytest.skip("unshare -rm (a private mount namespace for the tmpfs) is not allowed here")
    disk = tmp_path / "disk"
    disk.mkdir()
    wrapper = ("unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=8m tmpfs "{disk}" && exec "$0" "$@"')
    params = {"output_dir": str(disk / "bags"), "storage": storage, "flush_period": 0.2, **KEEP_ALL}
    recorder = start_node("recorder_node", params, wrapper=wrapper)
    camera = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    )
    assert wait_for(lambda: camera.get_subscription_count() > 0, timeout=60), recorder.log()
    time.sleep(0.3)
    for i in range(20):  # 921 KB each: the 8 MB disk is full after about eight
        msg = numpy_to_image(_frame(i), "rgb8")
        msg.header.stamp = Time(sec=100 + i)
        camera.publish(msg)
        time.sleep(0.1)
    assert wait_for(lambda: "[ERROR]" in recorder.log(), timeout=30), recorder.log()
    time.sleep(1.0)  # any further (wrong) error lines would come now
    log = recorder.log()
    errors = [line for line in log.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "No space left" in errors[0], log
    assert "Traceback" not in log and recorder.alive()

    bags = sorted((shutil.copytree(f"/proc/{recorder.pid}/root{disk}/bags", tmp_path / "copy")).iterdir())
    assert len(bags) == 1, bags
    bag = bags[0]
    with AnyReader([bag], default_typestore=jazzy_typestore()) as reader:
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp.sec for c, _, raw in reader.messages()]
        assert reader.message_count == len(stamps)  # the metadata counts exactly what is there
    assert len(stamps) >= 5 and stamps == list(range(100, 100 + len(stamps)))
    read = open_frame_source(bag).read_all()
    assert [int(t) for t, _ in read] == stamps
    for stamp, image in read:
        np.testing.assert_array_equal(image, _frame(int(stamp) - 100))
    recorder.process.send_signal(signal.SIGINT)
    assert recorder.process.wait(timeout=10) == 0, recorder.log()
