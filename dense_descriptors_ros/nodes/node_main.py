"""The ``main()`` every node shares: init, drive the lifecycle to active (``autostart``), spin, shut down cleanly."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

import rclpy
import yaml
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from dense_descriptors_ros.nodes.configured_node import ConfiguredLifecycleNode

# The executor waits at most this long, so a signal (handled by Python between two waits) takes effect at once.
SPIN_PERIOD = 0.1


def omp_wait_policy_argument(argv: Sequence[str]) -> str | None:
    """The ``omp_wait_policy`` parameter given on a node's command line (``--ros-args -p omp_wait_policy:=X`` or a
    ``--params-file`` that sets it; the last one wins), None when not given. Read before torch is imported, which
    is the only time torch's OpenMP reads its wait policy (model/omp_wait.py)."""
    if "--ros-args" not in argv:
        return None
    args = list(argv[list(argv).index("--ros-args") + 1 :])
    policy = None
    for flag, value in itertools.pairwise(args):
        if flag in ("-p", "--param"):
            name, _, given = value.partition(":=")
            if name.rsplit(":", 1)[-1] == "omp_wait_policy":
                policy = given.strip().strip("'\"")
        elif flag == "--params-file":
            policy = _omp_wait_policy_in_file(value) or policy
    return policy


def _omp_wait_policy_in_file(path: str) -> str | None:
    """``omp_wait_policy`` of any node section of a ROS 2 parameter file (an unreadable file: None; the node's own
    parameter loading reports it)."""
    try:
        with open(path) as f:
            sections = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    for section in sections.values() if isinstance(sections, dict) else ():
        parameters = section.get("ros__parameters") if isinstance(section, dict) else None
        if isinstance(parameters, dict) and "omp_wait_policy" in parameters:
            return str(parameters["omp_wait_policy"])
    return None


def run_node(make_node: Callable[[], ConfiguredLifecycleNode], args: list[str] | None = None) -> None:
    """Run a lifecycle node until Ctrl-C / SIGTERM, then ``close()`` it while ROS is still up and end the process
    with exit code 0 (a crash still raises, with its traceback).

    SIGINT and SIGTERM (ros2 launch, docker stop) raise KeyboardInterrupt here instead of shutting the context down
    from rclpy's own handler, so a node can close files (the recorder's bag) and log its counts before exiting.
    A failed configure or activate leaves the node up in the state the transition left it in (unconfigured or
    inactive) with its error logged, ready for a ``ros2 lifecycle set`` once the parameter or file is fixed.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        if node.get_parameter("autostart").value and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        while rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
        executor.shutdown(timeout_sec=0.5)
        # The DDS participant goes with the context only once nothing holds it: without the node and the executor
        # collected first, Fast DDS never unlinks its shared-memory segment (8 MB with
        # config/fastdds_large_messages.xml) and every exit would leave it in /dev/shm (os._exit skips finalisers).
        node = executor = None
        gc.collect()
        if rclpy.ok():
            rclpy.shutdown()
    # Everything is released and the logs are flushed: skip the interpreter's teardown of torch and friends (a second
    # or more on a small CPU, which would break the promise of an exit within 2 s of Ctrl-C).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
