"""Real rclpy in tests: the package's InProcessGraph under the names the tests use.

Tests that use it open DDS traffic: run them inside a private network namespace (scripts/run_tests.sh does).
"""

from dense_descriptors_ros.nodes.in_process_graph import InProcessGraph as RosHarness
from dense_descriptors_ros.nodes.in_process_graph import wait_for

__all__ = ["RosHarness", "wait_for"]
