"""ConfiguredLifecycleNode: the lifecycle skeleton every node of the package shares, and NodeConfig, the
parameters every node has.

The node's config dataclass (``CONFIG``, a NodeConfig) is declared as ROS parameters at construction and read and
checked on configure; activate acquires resources, subscribes and starts; deactivate, cleanup and shutdown undo it
in one place (``_release``). Subclasses fill in the hooks. Whatever goes wrong in configure or activate (a bad
parameter, a missing or broken model file, an unknown device) fails the transition with one error line and leaves
nothing half-started: the node stays up, unconfigured or inactive, until the parameter or file is fixed.

Parameters set at run time are checked like configure checks them. While the node is configured, those in
``LIVE_PARAMETERS`` take effect at once (``apply_live_parameters``); the others are refused with the reason
(cleanup, set, configure again). A ChangeState request the current state has no transition for is refused
instead of raising inside the executor.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import ConfigError, check_value
from dense_descriptors_ros.nodes.node_diagnostics import NodeDiagnostics
from dense_descriptors_ros.nodes.qos_profiles import QOS_NAMES
from dense_descriptors_ros.nodes.ros_parameters import (
    as_declared_type,
    declare_config_parameters,
    given_parameters,
    parameter_specs,
    read_config_parameters,
)


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
    diagnostics_period: float = field(
        default=1.0,
        metadata={
            "help": "seconds between diagnostic_msgs/DiagnosticArray messages on /diagnostics (0 = off)",
            "range": (0.0, 3600.0),
        },
    )


class ConfiguredLifecycleNode(LifecycleNode):
    CONFIG: ClassVar[type[NodeConfig]]
    LIVE_PARAMETERS: ClassVar[frozenset[str]] = frozenset()  # applied at once while configured

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._specs = parameter_specs(self.CONFIG)
        self._unusable = declare_config_parameters(self, self.CONFIG)
        self._warn_unknown_parameters()
        self.config: Any = None
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self.diagnostics = NodeDiagnostics(self)
        self.add_pre_set_parameters_callback(self._as_declared_types)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        self._guard_change_state()

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

    def check_live_parameters(self, config: Any, names: set[str]) -> None:
        """Raise ConfigError to refuse the live change of parameters ``names`` to ``config`` (checked, not applied)."""

    def apply_live_parameters(self, names: set[str]) -> None:
        """Make parameters ``names`` (of LIVE_PARAMETERS), already in ``self.config`` and stored as the node's
        parameters, take effect."""

    def diagnostic_values(self) -> dict[str, Any]:
        """Counts published on /diagnostics (see NodeDiagnostics for the keys that raise a warning)."""
        return {}

    # --- lifecycle -------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._unusable:
                reasons = "; ".join(self._unusable.values())
                raise ConfigError(f"{self.get_name()}: parameter {reasons} (given at start-up: set a valid value)")
            self.config = read_config_parameters(self, self.CONFIG)
            self.check_config()
            self._pubs = self.make_publishers()
        except Exception as exc:  # a node must not die of its configuration: it stays unconfigured
            self.config = None
            self.get_logger().error(f"configure failed: {one_line(exc)}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.acquire()
            self._subs = self.make_subscriptions()
            self.start()
        except Exception as exc:  # e.g. a model file that does not load: the node stays inactive
            self.get_logger().error(f"activate failed: {one_line(exc)}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.diagnostics.start(self.config.diagnostics_period)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self.config = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Release everything and destroy the node (process exit, whatever the lifecycle state)."""
        self._release()
        self.destroy_node()

    def _release(self) -> None:
        self.diagnostics.stop()
        self.stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.release_resources()

    # --- parameters ------------------------------------------------------------------------------------------
    def _warn_unknown_parameters(self) -> None:
        unknown = sorted(
            name
            for name in given_parameters(self)
            if not self.has_parameter(name) and not name.startswith("qos_overrides.")
        )
        for name in unknown:
            close = difflib.get_close_matches(name, self._specs, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.get_logger().warning(f"unknown parameter {name!r} ignored{hint}; `ros2 param list` shows them all")

    def _as_declared_types(self, parameters: list[Parameter]) -> list[Parameter]:
        """Integers set for float parameters become floats (``ros2 param set ... 1`` sends an integer)."""
        return [
            Parameter(p.name, value=as_declared_type(self._specs[p.name], p.value)) if p.name in self._specs else p
            for p in parameters
        ]

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in self._specs}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            if self.config is None:  # unconfigured: checked now, used by the next configure
                for name, value in changes.items():
                    spec = self._specs[name]
                    check_value(spec, value, where=name.removesuffix(spec.name))
            else:
                fixed = sorted(set(changes) - self.LIVE_PARAMETERS)
                if fixed:
                    live = ", ".join(sorted(self.LIVE_PARAMETERS)) or "none"
                    raise ConfigError(
                        f"{', '.join(fixed)} cannot change while the node is configured: deactivate and clean it up "
                        f"(ros2 lifecycle set {self.get_fully_qualified_name()} cleanup), set it, configure and "
                        f"activate again. Parameters that change at run time: {live}"
                    )
                config = read_config_parameters(self, self.CONFIG, changes)
                self.check_live_parameters(config, set(changes))
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        for name in changes:
            self._unusable.pop(name, None)
        if self.config is not None:
            self.config = config
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, parameters: list[Parameter]) -> None:
        # Applied once rclpy has stored the values: what they start (a model load in the background) may set a
        # parameter back, and that must come after this change is stored, not be overwritten by it.
        names = {p.name for p in parameters if p.name in self._specs}
        if names and self.config is not None:
            self.apply_live_parameters(names)

    # --- lifecycle service guard -----------------------------------------------------------------------------
    def _guard_change_state(self) -> None:
        """rclpy answers a ChangeState by label for a transition the current state lacks with success=False, but
        by id it raises inside the executor, which kills the node: refuse it the same way."""
        (service,) = (s for s in self.services if s.srv_type is ChangeState)
        handle = service.callback

        def guarded(request: ChangeState.Request, response: ChangeState.Response) -> ChangeState.Response:
            try:
                return handle(request, response)
            except Exception as exc:  # rclpy's RCLError: "Transition is not registered"
                self.get_logger().warning(f"refused lifecycle transition id {request.transition.id}: {one_line(exc)}")
                response.success = False
                return response

        service.callback = guarded


def one_line(exc: BaseException) -> str:
    """An exception as one log line (its type named unless it is a ValueError or OSError, whose text says it all)."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"
