"""A node's frame counts on /diagnostics (diagnostic_msgs/DiagnosticArray, the ROS convention read by
rqt_robot_monitor, diagnostic_aggregator and Foxglove), every ``diagnostics_period`` seconds while it is active.

One DiagnosticStatus per node, named after it, with every count as a key/value pair. The level is WARN while a
count of trouble (``TROUBLE_KEYS``: frames lost upstream, bad input, failures, unmatched stereo images, recording
errors, models that did not load) grew since the previous message, and OK otherwise.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

TOPIC = "/diagnostics"
TROUBLE_KEYS = ("lost", "bad input", "failed", "unmatched", "recording errors", "model loads failed")


def diagnostic_status(name: str, values: dict[str, Any], previous: dict[str, Any]) -> DiagnosticStatus:
    """The status of ``values`` (``{key: count or text}``), WARN when a trouble count grew since ``previous``."""
    grew = {
        key: values[key] - previous.get(key, 0) for key in TROUBLE_KEYS if values.get(key, 0) > previous.get(key, 0)
    }
    summary = ", ".join(f"{key} {value}" for key, value in values.items() if isinstance(value, int))
    if grew:
        level = DiagnosticStatus.WARN
        message = "; ".join(f"{n} more {key}" for key, n in grew.items()) + f" since the last report ({summary})"
    else:
        level, message = DiagnosticStatus.OK, summary
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id="",
        values=[KeyValue(key=key, value=str(value)) for key, value in values.items()],
    )


class NodeDiagnostics:
    """Publishes ``node.diagnostic_values()`` on /diagnostics; ``start(period)`` on activate, ``stop()`` on release."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, TOPIC, 10)
        self._timer = None
        self._previous: dict[str, Any] = {}

    def start(self, period: float) -> None:
        if period > 0 and self._timer is None:
            self._timer = self._node.create_timer(period, self.publish)

    def stop(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None

    def publish(self) -> None:
        values = self._node.diagnostic_values()
        status = diagnostic_status(self._node.get_fully_qualified_name(), values, self._previous)
        self._previous = values
        header = Header(stamp=self._node.get_clock().now().to_msg())
        self._pub.publish(DiagnosticArray(header=header, status=[status]))
