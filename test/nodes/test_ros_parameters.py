"""Config dataclasses as ROS parameters: descriptions, ranges, choices and nested sections as dotted names."""

from dataclasses import dataclass, field

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.nodes.ros_parameters import declare_config_parameters, read_config_parameters


@dataclass
class Inner:
    radius: float = field(default=2.5, metadata={"help": "a radius", "range": (0.0, 10.0)})


@dataclass
class Outer:
    count: int = field(default=3, metadata={"help": "how many", "range": (1, 5)})
    mode: str = field(default="a", metadata={"help": "which", "choices": ("a", "b")})
    points: list[float] = field(default_factory=list, metadata={"help": "flat points"})
    inner: Inner = field(default_factory=Inner)


@pytest.mark.ros
def test_parameters_declared_with_descriptions_ranges_and_nesting(ros):
    node = ros.add(
        Node(
            "param_node",
            context=ros.context,
            parameter_overrides=[Parameter("inner.radius", value=7.0), Parameter("points", value=[1.0, 2.0])],
        )
    )
    declare_config_parameters(node, Outer)
    config = read_config_parameters(node, Outer)
    assert config == Outer(count=3, mode="a", points=[1.0, 2.0], inner=Inner(radius=7.0))
    descriptor = node.describe_parameter("count")
    assert descriptor.description == "how many"
    assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (1, 5)
    assert "one of: a, b" in node.describe_parameter("mode").description
    # rclpy itself refuses out-of-range values set at run time ...
    result = node.set_parameters([Parameter("count", value=9)])[0]
    assert not result.successful
    # ... and choices are checked when the config is read.
    node.set_parameters([Parameter("mode", value="z")])
    with pytest.raises(ConfigError, match="param_node: parameter mode: 'z' is not one of"):
        read_config_parameters(node, Outer)


@pytest.mark.ros
def test_empty_list_parameter_reads_as_empty(ros):
    node = ros.add(Node("empty_list_node", context=ros.context))
    declare_config_parameters(node, Outer)
    assert read_config_parameters(node, Outer).points == []


@pytest.mark.ros
def test_unusable_start_up_values_keep_the_default_and_are_reported(ros):
    given = [Parameter("count", value=9), Parameter("mode", value=4), Parameter("inner.radius", value=3)]
    node = ros.add(Node("given_node", context=ros.context, parameter_overrides=given))
    unusable = declare_config_parameters(node, Outer)
    assert unusable == {"count": "count: 9 is outside the allowed range [1, 5]", "mode": "mode: expected str, got 4"}
    config = read_config_parameters(node, Outer)
    assert (config.count, config.mode) == (3, "a")  # the defaults
    assert config.inner.radius == 3.0 and node.get_parameter("inner.radius").type_ == Parameter.Type.DOUBLE
