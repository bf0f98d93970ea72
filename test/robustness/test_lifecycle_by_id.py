"""A ChangeState request by transition id that the current state has no transition for is refused (as rclpy does
for an unknown label) instead of raising inside the executor and taking the node down."""

import pytest
from lifecycle_msgs.msg import Transition
from rclpy.parameter import Parameter

from dense_descriptors_ros.nodes.recorder_node import RecorderNode
from dense_descriptors_ros.nodes.tracker_node import TrackerNode

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("node_type", [TrackerNode, RecorderNode])
def test_transition_id_invalid_for_the_state_is_refused(ros, remote, tmp_path, node_type):
    params = {"input": "descriptors"} if node_type is TrackerNode else {"output_dir": str(tmp_path / "bags")}
    node = ros.add(
        node_type(context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    )
    name = node.get_name()
    assert remote.state(name) == "unconfigured"
    for invalid in (Transition.TRANSITION_ACTIVATE, Transition.TRANSITION_DEACTIVATE, 99):
        assert remote.change_state(name, transition_id=invalid) is False
        assert remote.state(name) == "unconfigured"
    assert remote.change_state(name, transition_id=Transition.TRANSITION_CONFIGURE) is True
    assert remote.change_state(name, transition_id=Transition.TRANSITION_CONFIGURE) is False  # already configured
    assert remote.change_state(name, transition_id=Transition.TRANSITION_ACTIVATE) is True
    assert remote.state(name) == "active"
