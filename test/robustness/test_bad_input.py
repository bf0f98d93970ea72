"""Bad input is counted and logged once per cause (not once per encoding), the next good frame is processed, and
the recorder warns about an undecodable frame when it arrives (not only at stop)."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Log
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.recorder_node import RecorderNode

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def test_two_problems_of_one_encoding_are_two_causes(ros, active_node, rosout, log_lines):
    node = active_node(DescriptorNode, image_qos="reliable", device="cpu", max_side=64)
    descriptors = ros.collector(Image, "descriptors")
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    good = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
    truncated = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
    truncated.data = bytes(truncated.data)[:100]
    short_step = numpy_to_image(np.zeros((48, 64, 3), np.uint8), "rgb8")
    short_step.step = 10
    for count, msg in enumerate((truncated, short_step), start=1):
        pub.publish(msg)
        assert wait_for(lambda n=count: node.problems.total >= n, timeout=20), node.problems.counts
    assert len(node.problems.counts) == 2, node.problems.counts
    assert wait_for(
        lambda: len([t for t in log_lines("descriptor_node", Log.WARN) if "skipping" in t]) == 2, timeout=10
    )
    good.header.stamp = Time(sec=9)
    assert wait_for(lambda: (pub.publish(good) or True) and descriptors, timeout=30, period=1.0)


def test_recorder_warns_about_an_undecodable_frame_at_once(ros, active_node, rosout, log_lines, tmp_path):
    node = active_node(RecorderNode, output_dir=str(tmp_path / "bags"), compressed=True, max_rate=0.0)
    pub = ros.node("camera").create_publisher(CompressedImage, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    pub.publish(CompressedImage(format="jpeg", data=b"not a jpeg at all"))
    assert wait_for(lambda: node.recorder.counts.undecodable == 1, timeout=20)
    assert wait_for(lambda: any("undecodable" in t for t in log_lines("recorder_node", Log.WARN)), timeout=10)
    assert node.recorder.recording
