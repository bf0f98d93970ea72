"""QoS profiles by name, so QoS is a plain string parameter (REP-2003: sensor data in, reliable out)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

QOS_NAMES = ("sensor_data", "reliable", "best_effort", "system_default")


def qos_by_name(name: str, depth: int = 5) -> QoSProfile:
    """'sensor_data' (best effort, keep last), 'reliable', 'best_effort' or 'system_default'."""
    if name == "sensor_data":
        profile = QoSProfile(**_as_kwargs(qos_profile_sensor_data))
        profile.depth = depth
        return profile
    if name == "system_default":
        return QoSProfile(**_as_kwargs(qos_profile_system_default))
    if name in ("reliable", "best_effort"):
        reliability = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=DurabilityPolicy.VOLATILE
        )
    raise ValueError(f"unknown QoS profile {name!r}; use one of {list(QOS_NAMES)}")


def _as_kwargs(profile: QoSProfile) -> dict:
    return {
        "history": profile.history,
        "depth": profile.depth,
        "reliability": profile.reliability,
        "durability": profile.durability,
    }


RELIABLE_OUT = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Large messages between our own nodes (descriptor images: 19.7 MB at 640x480, D=16): best effort loses every one
# of them (a single lost fragment drops the whole message), and a deeper queue only holds stale megabytes.
LARGE_OUT = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TRANSIENT_LOCAL_OUT = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
