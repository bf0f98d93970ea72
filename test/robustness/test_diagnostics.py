"""Every node reports its frame counts on /diagnostics (diagnostic_msgs/DiagnosticArray), and frames lost before
they reached it (gaps in the stamps) are counted, not silent. The recorder subscribes reliably by default."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.recorder_node import RecorderNode
from dense_descriptors_ros.nodes.tracker_node import TrackerNode

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# 10 Hz with frames 4, 5 and 8, 9, 10 missing: 5 lost.
STAMPS = [0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 1.1, 1.2]


def _stamped(msg, t):
    sec = int(t)
    msg.header.stamp = Time(sec=1000 + sec, nanosec=round((t - sec) * 1e9))
    return msg


def _latest(diagnostics, name):
    for array in reversed(list(diagnostics)):
        for status in array.status:
            if status.name == name:
                return status
    return None


def _values(status):
    return {v.key: v.value for v in status.values}


@pytest.mark.parametrize(
    ("node_type", "params", "topic", "output", "message"),
    [
        (TrackerNode, {"input": "descriptors", "stats_period": 0.0}, "descriptors", PointCloud2, "32FC16"),
        (DescriptorNode, {"device": "cpu", "max_side": 64}, "image", Image, "rgb8"),
    ],
    ids=["tracker_node", "descriptor_node"],
)
def test_lost_frames_are_counted_on_diagnostics(ros, active_node, node_type, params, topic, output, message):
    node = active_node(node_type, image_qos="reliable", diagnostics_period=0.2, **params)
    name = node.get_fully_qualified_name()
    diagnostics = ros.collector(DiagnosticArray, "/diagnostics")
    outputs = ros.collector(output, "tracks" if output is PointCloud2 else "descriptors")
    pub = ros.node("source").create_publisher(Image, topic, RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    rng = np.random.default_rng(0)
    for t in STAMPS:
        if message == "rgb8":
            data = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        else:
            data = rng.normal(size=(48, 64, 16)).astype(np.float32)
            data /= np.linalg.norm(data, axis=-1, keepdims=True)
        before = len(outputs)
        pub.publish(_stamped(numpy_to_image(data, message), t))  # one at a time: none dropped by the node
        assert wait_for(lambda b=before: len(outputs) > b, timeout=30)
    expected = {"received": "8", "processed": "8", "dropped": "0", "lost": "5", "failed": "0", "bad input": "0"}
    assert wait_for(lambda: (s := _latest(diagnostics, name)) and expected.items() <= _values(s).items(), timeout=10), (
        _values(_latest(diagnostics, name))
    )
    statuses = [s for a in diagnostics for s in a.status if s.name == name]
    assert any(s.level == DiagnosticStatus.WARN and "lost" in s.message for s in statuses)


def test_recorder_subscribes_reliably_and_reports_its_counts(ros, active_node, tmp_path):
    node = active_node(RecorderNode, output_dir=str(tmp_path / "bags"), diagnostics_period=0.2)  # image_qos: default
    (image_sub,) = [s for s in node.subscriptions if s.topic_name == "/image"]
    assert image_sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    diagnostics = ros.collector(DiagnosticArray, "/diagnostics")
    assert wait_for(lambda: _latest(diagnostics, "/recorder_node") is not None, timeout=10)
    values = _values(_latest(diagnostics, "/recorder_node"))
    assert values["state"].startswith("recording to") and values["received"] == "0" and values["lost"] == "0"
