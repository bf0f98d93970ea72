"""Parameters set at run time (`ros2 param set`): the ones a node can apply while running take effect at once, the
others are refused with the reason, and everything is accepted again once the node is cleaned up."""

import pytest
from rclpy.lifecycle import TransitionCallbackReturn

from dense_descriptors_ros.nodes.tracker_node import TrackerNode

pytestmark = pytest.mark.ros


def test_tracker_applies_live_parameters_and_refuses_the_rest(active_node, remote):
    node = active_node(TrackerNode, input="descriptors", stats_period=0.0)

    (result,) = remote.set_parameters("tracker_node", max_descriptor_distance=0.3)
    assert result.successful
    assert node.tracker.config.max_descriptor_distance == 0.3  # the running tracker uses it
    (result,) = remote.set_parameters("tracker_node", max_ratio=1)  # an integer for a float parameter
    assert result.successful and node.tracker.config.max_ratio == 1.0
    assert isinstance(remote.get_parameter("tracker_node", "max_ratio"), float)

    (result,) = remote.set_parameters("tracker_node", patch_size=7)
    assert not result.successful and "cleanup" in result.reason and "patch_size" in result.reason
    assert remote.get_parameter("tracker_node", "patch_size") == 5 and node.tracker.config.patch_size == 5
    (result,) = remote.set_parameters("tracker_node", subpixel="bogus")
    assert not result.successful and "subpixel" in result.reason
    assert node.tracker.config.subpixel == "parabola"

    node.trigger_deactivate()
    node.trigger_cleanup()
    (result,) = remote.set_parameters("tracker_node", patch_size=7)
    assert result.successful
    (result,) = remote.set_parameters("tracker_node", patch_size=200)  # checked even while unconfigured
    assert not result.successful
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.tracker.config.patch_size == 7
