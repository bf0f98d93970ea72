"""Fixtures of the benchmarks (the root conftest.py's ``ros``, ``node_publisher``, ... apply here too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ros_round_trip import stamped_round_trip


@pytest.fixture
def round_trip(ros) -> Callable[..., Callable[..., tuple[float, Any]]]:
    """``round_trip(msg_type, topic)``: :func:`stamped_round_trip` on a new node of the ``ros`` graph."""
    return lambda msg_type, topic: stamped_round_trip(ros.node(f"round_trip_{len(ros.nodes)}"), msg_type, topic)
