"""Several rclpy nodes in one process: a private context, a multi-threaded executor spinning in a thread.

The demo plays frames into the real nodes with it, and the tests use it to talk to nodes with real messages.
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


class InProcessGraph:
    def __init__(self, num_threads: int = 4) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=num_threads, context=self.context)
        self.nodes: list[Node] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the executor is being shut down
                if not self.context.ok():
                    return
                raise

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def node(self, name: str) -> Node:
        """A plain helper node in this graph (for publishers, subscribers and service clients)."""
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
            # The package's nodes release their workers and files first (ConfiguredLifecycleNode.close).
            getattr(node, "close", node.destroy_node)()
        self.nodes = []
        self.executor.shutdown(timeout_sec=2.0)
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> InProcessGraph:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, period: float = 0.05) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()
