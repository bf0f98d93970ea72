"""Fixtures of the robustness tests: a ``remote`` that drives any node (a process started with the root conftest's
``start_node``, or one in this process) through its ROS services from this process's graph (as `ros2 lifecycle`,
`ros2 param` and `ros2 service` do), the log on /rosout, a stereo rig.

Everything here opens DDS traffic: run it with scripts/run_tests.sh (private network namespace, own domain id).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builtin_interfaces.msg import Time
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import wait_for

REPO = Path(__file__).resolve().parents[2]


class Remote:
    """Talks to nodes by name through their services, from a helper node of the test's graph."""

    def __init__(self, ros: Any) -> None:
        self.node = ros.node("remote_control")
        self._clients: dict[str, Any] = {}

    def call(self, srv_type: Any, service: str, request: Any, timeout: float = 30.0) -> Any:
        """The response of ``service``; None when it is not offered (yet) or did not answer within ``timeout``."""
        if service not in self._clients:
            self._clients[service] = self.node.create_client(srv_type, service)
        client = self._clients[service]
        if not client.wait_for_service(timeout_sec=min(timeout, 5.0)):
            return None
        future = client.call_async(request)
        return future.result() if wait_for(future.done, timeout=timeout) else None

    def state(self, node: str) -> str | None:
        """The lifecycle state label of ``node`` (as `ros2 lifecycle get`), None when it does not answer."""
        response = self.call(GetState, f"/{node}/get_state", GetState.Request(), timeout=5.0)
        return response.current_state.label if response is not None else None

    def wait_state(self, node: str, label: str, process: Any = None, timeout: float = 120.0) -> bool:
        """Wait until ``node`` reports state ``label``; gives up early when its ``process`` has exited."""
        wait_for(lambda: self.state(node) == label or (process is not None and not process.alive()), timeout, 0.5)
        return self.state(node) == label

    def change_state(self, node: str, label: str = "", transition_id: int = 0) -> bool | None:
        """Trigger a transition by label (as `ros2 lifecycle set`) or by id; its success, None if no answer."""
        request = ChangeState.Request(transition=Transition(id=transition_id, label=label))
        response = self.call(ChangeState, f"/{node}/change_state", request, timeout=60.0)
        return response.success if response is not None else None

    def set_parameters(self, node: str, **values: Any) -> list:
        """Set parameters through the node's parameter service (as `ros2 param set`); the results."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        response = self.call(SetParameters, f"/{node}/set_parameters", request)
        assert response is not None, f"/{node}/set_parameters did not answer"
        return list(response.results)

    def get_parameter(self, node: str, name: str) -> Any:
        """A parameter's value (as `ros2 param get`)."""
        response = self.call(GetParameters, f"/{node}/get_parameters", GetParameters.Request(names=[name]))
        assert response is not None, f"/{node}/get_parameters did not answer"
        return parameter_value_to_python(response.values[0])


@pytest.fixture
def remote(ros) -> Remote:
    return Remote(ros)


@pytest.fixture
def active_node(ros) -> Callable[..., Any]:
    """``active_node(node_type, name=None, **params)``: a node of this process's graph, configured and active."""

    def make(node_type: type, name: str | None = None, **params: Any) -> Any:
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = ros.add(node_type(*([name] if name else []), context=ros.context, parameter_overrides=overrides))
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        return node

    return make


@pytest.fixture
def rosout(ros) -> list:
    """Every log message (rcl_interfaces/Log) the nodes of this graph publish on /rosout from now on."""
    received: list = []
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    ros.node("rosout_listener").create_subscription(Log, "/rosout", received.append, qos)
    return received


@pytest.fixture
def log_lines(rosout: list) -> Callable[..., list[str]]:
    """``log_lines(node, level=None)``: the texts ``node`` logged on /rosout (optionally only at ``level``)."""

    def lines(node: str, level: int | None = None) -> list[str]:
        return [m.msg for m in list(rosout) if m.name == node and (level is None or m.level == level)]

    return lines


@pytest.fixture
def diagnostic_value() -> Callable[..., str | None]:
    """``diagnostic_value(diagnostics, node, key)``: the newest value of ``key`` in the DiagnosticStatus of ``node``
    (e.g. "/slam_node") among the DiagnosticArrays received in ``diagnostics``; None before the first."""

    def value(diagnostics: list, node: str, key: str) -> str | None:
        for array in reversed(list(diagnostics)):
            for status in array.status:
                if status.name == node:
                    return next((v.value for v in status.values if v.key == key), None)
        return None

    return value


@pytest.fixture
def exit_all_within() -> Callable[..., dict[str, float]]:
    """``exit_all_within(processes, signals)``: signal every process at once; the seconds each took to exit."""
    return _exit_all_within


def _exit_all_within(
    processes: dict[str, Any], signals: dict[str, signal.Signals], timeout: float = 15.0
) -> dict[str, float]:
    """Signal every process at once; the seconds each took to exit (inf if it did not within ``timeout``)."""
    sent = {}
    for name, process in processes.items():
        sent[name] = time.monotonic()
        process.process.send_signal(signals[name])
    seconds: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seconds) < len(processes) and time.monotonic() < deadline:
        for name, process in processes.items():
            if name not in seconds and process.process.poll() is not None:
                seconds[name] = time.monotonic() - sent[name]
        time.sleep(0.02)
    return {name: seconds.get(name, float("inf")) for name in processes}


class StereoRig:
    """Publishes rectified stereo pairs with their CameraInfo to a slam_node of the test's graph."""

    camera = StereoCamera(fx=200.0, fy=200.0, cx=160.0, cy=120.0, baseline=0.12, width=320, height=240)

    def __init__(self, ros: Any) -> None:
        node = ros.node("stereo_rig")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            name: node.create_publisher(kind, name, qos)
            for name, kind in [
                ("left/image_rect", Image),
                ("right/image_rect", Image),
                ("left/camera_info", CameraInfo),
                ("right/camera_info", CameraInfo),
            ]
        }
        cam = self.camera
        self._infos = {}
        for side, tx in (("left", 0.0), ("right", -cam.fx * cam.baseline)):
            info = CameraInfo(width=cam.width, height=cam.height)
            info.k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
            info.p = [cam.fx, 0.0, cam.cx, tx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
            self._infos[side] = info

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self._pubs.values())

    def publish(self, frame: Any, stamp: float, right_stamp: float | None = None) -> None:
        """One pair of a synthetic_stereo_sequence frame (mono8), stamped ``stamp`` (right: ``right_stamp``)."""
        for side, image, t in (
            ("left", frame.left, stamp),
            ("right", frame.right, stamp if right_stamp is None else right_stamp),
        ):
            sec = int(t)
            header = Header(stamp=Time(sec=sec, nanosec=round((t - sec) * 1e9)), frame_id=f"{side}_camera_optical")
            self._infos[side].header = header
            self._pubs[f"{side}/camera_info"].publish(self._infos[side])
            msg = numpy_to_image(image, "mono8")
            msg.header = header
            self._pubs[f"{side}/image_rect"].publish(msg)


@pytest.fixture
def stereo_rig(ros) -> StereoRig:
    return StereoRig(ros)
