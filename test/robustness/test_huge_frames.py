"""Huge frames: an image above the pixel limit is rejected before it is decoded (memory stays flat), and the
descriptor images follow the network's output resolution (or max_output_side), not the camera's."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def _node(active_node, **params):
    return active_node(DescriptorNode, image_qos="reliable", device="cpu", **params)


def _camera(ros, node):
    descriptors = ros.collector(Image, "descriptors")
    viz = ros.collector(Image, "descriptors/viz")
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0 and node.subscriptions)
    return pub, descriptors, viz


def _frame(h, w, sec, encoding="rgb8"):
    shape = (h, w, 3) if encoding == "rgb8" else (h, w)
    msg = numpy_to_image(np.random.default_rng(sec).integers(0, 255, shape, dtype=np.uint8), encoding)
    msg.header.stamp = Time(sec=sec)
    return msg


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def test_frames_above_the_pixel_limit_are_rejected_before_decoding(ros, active_node):
    node = _node(active_node, max_input_pixels=50_000, max_side=64)
    pub, descriptors, _ = _camera(ros, node)
    pub.publish(_frame(240, 320, 1))  # 76 800 pixels
    assert wait_for(lambda: node.problems.counts["too large"] == 1, timeout=20), node.problems.counts
    assert wait_for(lambda: (pub.publish(_frame(150, 200, 2)) or True) and descriptors, timeout=30, period=1.0)
    assert {m.header.stamp.sec for m in descriptors} == {2}


def test_the_default_pixel_limit_keeps_memory_flat(ros, active_node):
    node = _node(active_node, max_side=64)
    assert node.config.max_input_pixels == 4096 * 4096
    pub, _, _ = _camera(ros, node)
    huge = _frame(4000, 6000, 3, "mono8")  # 24 Mpx: decoded and run at full size it would take gigabytes
    before = _rss_mb()
    pub.publish(huge)
    assert wait_for(lambda: node.problems.counts["too large"] == 1, timeout=30), node.problems.counts
    assert _rss_mb() - before < 200


def test_descriptors_follow_the_network_output_resolution_or_max_output_side(ros, active_node, remote):
    node = _node(active_node, max_side=80)
    pub, descriptors, viz = _camera(ros, node)
    assert wait_for(lambda: (pub.publish(_frame(120, 160, 4)) or True) and descriptors and viz, timeout=30, period=1.0)
    # The out-of-the-box model has output stride 4: an 80x60 inference image gives 20x15 descriptors.
    assert node.engine.output_stride == 4
    assert (descriptors[-1].height, descriptors[-1].width) == (15, 20)
    assert (viz[-1].height, viz[-1].width) == (15, 20)
    (result,) = remote.set_parameters("descriptor_node", max_output_side=160)
    assert result.successful, result.reason
    count = len(descriptors)
    assert wait_for(
        lambda: (pub.publish(_frame(120, 160, 5)) or True) and len(descriptors) > count, timeout=30, period=1.0
    )
    assert (descriptors[-1].height, descriptors[-1].width) == (120, 160)
