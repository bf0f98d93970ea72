"""Push a checkpoint to a running node: a ``~/load_model`` call (rcl_interfaces/srv/SetParameters on model_dir,
see descriptor_model_node.py) from a short-lived node of its own context, e.g. for the adapt loop of
`dense-descriptors train --watch-bags DIR --publish-to NODE`."""

from __future__ import annotations

from pathlib import Path

import rclpy
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter


class ModelPushError(RuntimeError):
    """The node did not answer, or refused the checkpoint (the message says why)."""


def push_model(node: str, model_dir: str | Path, timeout: float = 30.0) -> str:
    """Ask node ``node`` (e.g. ``/tracker_node``) to load ``model_dir``; its answer (loading started). Raises
    ModelPushError when the service does not answer within ``timeout`` seconds or refuses the folder."""
    service = f"{node.rstrip('/')}/load_model"
    context = Context()
    rclpy.init(context=context)
    client_node = Node("model_push", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)
    try:
        client = client_node.create_client(SetParameters, service)
        if not client.wait_for_service(timeout_sec=timeout):
            raise ModelPushError(f"{service} is not offered (is the node running, and is its name right?)")
        parameter = Parameter("model_dir", value=str(model_dir)).to_parameter_msg()
        future = client.call_async(SetParameters.Request(parameters=[parameter]))
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise ModelPushError(f"{service} did not answer within {timeout:.0f} s")
        (result,) = future.result().results
        if not result.successful:
            raise ModelPushError(f"{service} refused {model_dir}: {result.reason}")
        return result.reason
    finally:
        executor.shutdown()
        client_node.destroy_node()
        rclpy.shutdown(context=context)
