"""The pieces every node shares: config dataclasses as ROS parameters, the newest-frame worker, problem counting."""

import threading
import time
from dataclasses import dataclass, field

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker
from dense_descriptors_ros.nodes.qos_profiles import qos_by_name
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


def test_latest_frame_worker_keeps_only_newest_and_counts_drops():
    seen = []
    gate = threading.Event()

    def process(item):
        gate.wait(5)
        seen.append(item)

    worker = LatestFrameWorker(process, on_error=lambda exc: None)
    worker.start()
    worker.put(0)
    time.sleep(0.1)  # the worker is now blocked on item 0
    for i in range(1, 6):
        worker.put(i)
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == [0, 5]
    assert (worker.counts.received, worker.counts.processed, worker.counts.dropped) == (6, 2, 4)


def test_latest_frame_worker_survives_exceptions():
    errors = []

    def process(item):
        if item == "bad":
            raise ValueError("broken frame")

    worker = LatestFrameWorker(process, on_error=errors.append)
    worker.start()
    for item in ("bad", "good"):
        worker.put(item)
        assert worker.wait_idle(5)
    worker.stop()
    assert [str(e) for e in errors] == ["broken frame"]
    assert (worker.counts.failed, worker.counts.processed) == (1, 1)


class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(text)


def test_input_problems_log_once_per_cause_and_count():
    logger = _Logger()
    problems = InputProblems(logger, every=100)
    for _ in range(5):
        problems.report("bad encoding", "yuv422")
    problems.report("empty image", "0x0")
    assert problems.counts == {"bad encoding": 5, "empty image": 1}
    assert problems.total == 6
    assert len(logger.lines) == 2 and "bad encoding, 1 so far" in logger.lines[0]


def test_qos_by_name():
    from rclpy.qos import ReliabilityPolicy

    assert qos_by_name("sensor_data").reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos_by_name("reliable", depth=3).depth == 3
    with pytest.raises(ValueError, match="unknown QoS profile 'fast'"):
        qos_by_name("fast")
