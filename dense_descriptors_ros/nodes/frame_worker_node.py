"""FrameWorkerNode: the lifecycle skeleton the camera-processing nodes share.

It owns the config (declared as parameters at construction, read on configure), the newest-frame worker, the
bad-input counter, the ``~/enable`` service and the teardown on deactivate / cleanup / shutdown. A subclass sets
``CONFIG``, creates its publishers in ``make_publishers``, its subscriptions (feeding ``self.worker.put``) in
``make_subscriptions``, loads what it needs in ``acquire`` and processes one item in ``process``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import SetBool

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker
from dense_descriptors_ros.nodes.ros_parameters import declare_config_parameters, read_config_parameters


class FrameWorkerNode(LifecycleNode):
    CONFIG: ClassVar[type]

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_config_parameters(self, self.CONFIG)
        self.config: Any = None
        self.problems = InputProblems(self.get_logger())
        self.worker = LatestFrameWorker(self._guarded_process, self._on_worker_error, name=f"{node_name}-worker")
        self.enabled = True
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self.create_service(SetBool, "~/enable", self._on_enable)

    # --- hooks for subclasses --------------------------------------------------------------------------------
    def check_config(self) -> None:
        """Raise ValueError when the configuration cannot work (e.g. a missing checkpoint)."""

    def make_publishers(self) -> dict[str, Any]:
        return {}

    def acquire(self) -> None:
        """Load models and other resources (on activate); raise ValueError / RuntimeError to fail activation."""

    def make_subscriptions(self) -> list:
        return []

    def release_resources(self) -> None:
        """Drop what ``acquire`` loaded (on deactivate, cleanup and shutdown)."""

    def process(self, item: Any) -> None:
        raise NotImplementedError

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
        except (ValueError, RuntimeError) as exc:
            self.get_logger().error(f"activate failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._subs = self.make_subscriptions()
        self.worker.start()
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

    def _release(self) -> None:
        self.worker.stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self.release_resources()

    # --- work ------------------------------------------------------------------------------------------------
    def _guarded_process(self, item: Any) -> None:
        if self.enabled:
            self.process(item)

    def _on_worker_error(self, exc: BaseException) -> None:
        self.problems.report(type(exc).__name__, str(exc))

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success, response.message = True, "enabled" if self.enabled else "disabled"
        return response
