"""ConfiguredLifecycleNode: the lifecycle skeleton every node of the package shares, and NodeConfig, the
parameters every node has.

The node's config dataclass (``CONFIG``, a NodeConfig) is declared as ROS parameters at construction and read and
checked on configure; activate acquires resources, subscribes and starts; deactivate, cleanup and shutdown undo it
in one place (``_release``). Subclasses fill in the hooks; any ValueError / RuntimeError / OSError in activation
fails the transition with a one-line message and leaves nothing half-started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.nodes.qos_profiles import QOS_NAMES
from dense_descriptors_ros.nodes.ros_parameters import declare_config_parameters, read_config_parameters


@dataclass
class NodeConfig:
    """Parameters of every node; a node's config inherits them (with its library settings)."""

    image_qos: str = field(
        default="sensor_data",
        metadata={
            "help": "QoS of the sensor subscriptions (images, descriptor images, camera_info)",
            "choices": QOS_NAMES,
        },
    )
    autostart: bool = field(default=True, metadata={"help": "configure and activate the lifecycle node at start-up"})


class ConfiguredLifecycleNode(LifecycleNode):
    CONFIG: ClassVar[type[NodeConfig]]

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_config_parameters(self, self.CONFIG)
        self.config: Any = None
        self._subs: list = []
        self._pubs: dict[str, Any] = {}

    # --- hooks for subclasses --------------------------------------------------------------------------------
    def check_config(self) -> None:
        """Raise ValueError when the configuration cannot work (e.g. a missing checkpoint)."""

    def make_publishers(self) -> dict[str, Any]:
        return {}

    def acquire(self) -> None:
        """Load models and other resources (on activate)."""

    def make_subscriptions(self) -> list:
        return []

    def start(self) -> None:
        """Start processing, after the subscriptions exist."""

    def stop(self) -> None:
        """Stop processing (first step of every teardown)."""

    def release_resources(self) -> None:
        """Drop what ``acquire`` and ``start`` created (on deactivate, cleanup and shutdown)."""

    # --- lifecycle -------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read_config_parameters(self, self.CONFIG)
            self.check_config()
        except (ConfigError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._pubs = self.make_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.acquire()
            self._subs = self.make_subscriptions()
            self.start()
        except (ValueError, RuntimeError, OSError) as exc:
            self.get_logger().error(f"activate failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Release everything and destroy the node (process exit, whatever the lifecycle state)."""
        self._release()
        self.destroy_node()

    def _release(self) -> None:
        self.stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.release_resources()
