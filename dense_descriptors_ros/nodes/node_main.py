"""The ``main()`` every node shares: init, drive the lifecycle to active (``autostart``), spin, shut down cleanly."""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode
from rclpy.signals import SignalHandlerOptions


def run_node(make_node: Callable[[], LifecycleNode], args: list[str] | None = None) -> None:
    """Run a lifecycle node until Ctrl-C / SIGTERM; the node's ``_release()`` runs while ROS is still up.

    SIGINT and SIGTERM (ros2 launch, docker stop) raise KeyboardInterrupt here instead of shutting the context down
    from rclpy's own handler, so a node can close files (the recorder's bag) and log its counts before exiting.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = make_node()
    try:
        if node.get_parameter("autostart").value:
            node.trigger_configure()
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._release()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
