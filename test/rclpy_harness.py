"""Real rclpy in tests: a private context, a multi-threaded executor spinning in a thread, and waiting helpers.

Tests that use it open DDS traffic: run them inside a private network namespace (scripts/run_tests.sh does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


class RosHarness:
    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.nodes: list[Node] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # executor shutting down
                if not self.context.ok():
                    return
                raise

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str) -> Node:
        return self.add(Node(name, context=self.context))

    def collector(self, msg_type: Any, topic: str, depth: int = 50) -> list:
        """Subscribe (reliable) and return the list the messages are appended to."""
        received: list = []
        node = self.node(f"collector_{len(self.nodes)}")
        node.create_subscription(
            msg_type, topic, received.append, QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        )
        return received

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown(timeout_sec=2.0)
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()
