"""Fixtures of the benchmarks (the root conftest.py's ``ros``, ``node_publisher``, ... apply here too)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from dense_descriptors_ros.nodes.in_process_graph import wait_for


@pytest.fixture
def round_trip(ros) -> Callable[..., Callable[[Any, Any], tuple[float, Any]]]:
    """``round_trip(msg_type, topic)`` subscribes ``topic`` (reliable) and returns ``send(publisher, msg)``: it
    publishes ``msg`` and returns (seconds from publishing to the arrival of the output stamped like ``msg``, that
    output). The arrival time is taken in the subscription callback, not by polling; stamps must be unique."""

    def subscribe(msg_type: Any, topic: str) -> Callable[[Any, Any], tuple[float, Any]]:
        arrived: dict[tuple[int, int], tuple[float, Any]] = {}
        lock = threading.Lock()

        def on_output(msg: Any) -> None:
            now = time.perf_counter()
            with lock:
                arrived[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (now, msg)

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        ros.node(f"round_trip_{len(ros.nodes)}").create_subscription(msg_type, topic, on_output, qos)

        def send(publisher: Any, msg: Any) -> tuple[float, Any]:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            start = time.perf_counter()
            publisher.publish(msg)
            assert wait_for(lambda: key in arrived, timeout=60, period=0.001), f"no {topic} stamped {key}"
            with lock:
                end, output = arrived.pop(key)
            return end - start, output

        return send

    return subscribe
