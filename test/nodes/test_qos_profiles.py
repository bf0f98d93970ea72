"""QoS profiles by the names the image_qos parameters take."""

import pytest
from rclpy.qos import ReliabilityPolicy

from dense_descriptors_ros.nodes.qos_profiles import qos_by_name


def test_qos_by_name():
    assert qos_by_name("sensor_data").reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos_by_name("reliable", depth=3).depth == 3
    with pytest.raises(ValueError, match="unknown QoS profile 'fast'"):
        qos_by_name("fast")
