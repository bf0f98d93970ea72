"""Timing a ROS round trip by message stamp: publish, then the arrival of the output stamped alike (benchmarks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.qos import QoSProfile, ReliabilityPolicy

from dense_descriptors_ros.nodes.in_process_graph import wait_for


def stamped_round_trip(node: Any, msg_type: Any, topic: str) -> Callable[..., tuple[float, Any]]:
    """Subscribes ``topic`` (reliable) on ``node`` and returns ``send(publisher, msg, resend_every=None)``: it
    publishes ``msg`` and returns (seconds from publishing to the arrival of the output stamped like ``msg``, that
    output). The arrival time is taken in the subscription callback, not by polling; stamps must be unique. With
    ``resend_every`` (seconds) the message is published again while no output came (a node still starting)."""
    arrived: dict[tuple[int, int], tuple[float, Any]] = {}
    lock = threading.Lock()

    def on_output(msg: Any) -> None:
        now = time.perf_counter()
        with lock:
            arrived[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (now, msg)

    node.create_subscription(msg_type, topic, on_output, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))

    def send(publisher: Any, msg: Any, resend_every: float | None = None) -> tuple[float, Any]:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        deadline = time.monotonic() + 60
        while True:
            start = time.perf_counter()
            publisher.publish(msg)
            if wait_for(lambda: key in arrived, timeout=resend_every or 60, period=0.001):
                break
            assert time.monotonic() < deadline, f"no {topic} stamped {key}"
        with lock:
            end, output = arrived.pop(key)
        return end - start, output

    return send
