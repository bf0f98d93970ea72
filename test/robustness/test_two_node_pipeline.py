"""The documented two-node pipeline (tracker.launch.py with start_descriptor_node:=true): descriptor_node and
tracker_node as separate processes with the package's parameter files and, as the launch file gives them, its Fast
DDS profile for large messages. The descriptor images (the out-of-the-box model's stride-4 map of a 640x480 frame,
2.5 MB) must reach the tracker: the descriptors topic is reliable, depth 1 (keep the newest) on both sides; the
tracker brings them back to the 640x480 pixel grid."""

from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.messages.pointcloud import pointcloud2_to_array
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]


def test_descriptor_node_feeds_tracker_node_at_640x480(ros, start_node, remote, large_messages_env, fastdds_segments):
    # The camera link is made reliable here: this test is about the descriptors link (losses on a best-effort
    # camera link are counted on /diagnostics, see test_diagnostics.py).
    descriptor = start_node(
        "descriptor_node",
        {"device": "cpu", "image_qos": "reliable"},
        params_file=REPO / "config" / "descriptors.yaml",
        env=large_messages_env,
    )
    tracker = start_node(
        "tracker_node",
        {"device": "cpu", "input": "descriptors"},
        params_file=REPO / "config" / "tracker.yaml",
        env=large_messages_env,
    )
    assert remote.wait_state("descriptor_node", "active", descriptor), descriptor.log()
    assert remote.wait_state("tracker_node", "active", tracker), tracker.log()
    # The profile was read: each node's participant has its 8 MB segment (Fast DDS's own default is 0.5 MB), so the
    # 2.5 MB descriptor images go by shared memory.
    for process in (descriptor, tracker):
        assert max(fastdds_segments(process.pid).values(), default=0) >= 8 << 20, process.log()
    tracks = ros.collector(PointCloud2, "tracks")
    camera = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    assert wait_for(lambda: camera.get_subscription_count() > 0, timeout=30)
    delivered = 0
    for t, frame in enumerate(textured_object_video(6, 480, 640, seed=4).frames):
        msg = numpy_to_image(frame, "rgb8")
        msg.header.stamp = Time(sec=t)
        camera.publish(msg)
        # One frame at a time (both nodes keep only the newest input): about a second of inference per frame.
        delivered += wait_for(lambda t=t: any(m.header.stamp.sec == t for m in tracks), timeout=15)
    assert delivered >= 5, f"tracks for {delivered} of 6 frames\n{descriptor.log()}\n{tracker.log()}"
    assert all(m.width == 30 for m in tracks)  # auto_points: 30 in config/tracker.yaml
    # Tracks are in pixels of the 640x480 image, not of the 160x120 descriptor map.
    xy = np.concatenate([np.stack([p["x"], p["y"]], axis=1) for p in map(pointcloud2_to_array, tracks)])
    assert (xy >= 0).all() and (xy[:, 0] < 640 + 3).all() and (xy[:, 1] < 480 + 3).all()
    assert xy[:, 0].max() > 160 and xy[:, 1].max() > 120
