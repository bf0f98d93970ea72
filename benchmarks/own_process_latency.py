"""descriptor_node in its own process, as ``ros2 run`` starts it: latency from publishing an image to receiving its
descriptors, against the network's time the node reports; and the floor of a bare echo node in its own process.

``python benchmarks/own_process_latency.py [--threads N]`` prints one JSON line; benchmarks/test_bench_messages.py
runs it once per transport setting (the environment it inherits, e.g. ``FASTRTPS_DEFAULT_PROFILES_FILE``, holds for
this process's camera and for the nodes it starts). Per size (320x240, 640x480) the floor: benchmarks/
descriptor_echo_node.py answers each image with a ready-made message of descriptor_node's size (two DDS hops between
processes, nothing else); per runtime (``auto`` = OpenVINO here, and ``torch``): descriptor_node
(``python -m dense_descriptors_ros.nodes.descriptor_node``, node_main's single-threaded executor), a fresh one per
runtime and size, its latency (32FC, the default message) against the network's median time that the node reports on
/diagnostics (``network ms``, over these frames). The camera and the receiver are one node in this process on a
single-threaded executor; frames go 50 ms apart, medians after two warm-up frames.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_round_trip import stamped_round_trip
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import NETWORK_MS_KEY
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

SIZES = {"320x240": (240, 320), "640x480": (480, 640)}
FRAMES = {"320x240": 20, "640x480": 10}  # timed frames per size, after two warm-up frames
RUNTIMES = ("auto", "torch")
FRAME_GAP_S = 0.05  # between a frame's descriptors and the next frame: a camera's pace, not back to back


@contextmanager
def _camera_client() -> Iterator[tuple[Any, Callable[..., tuple[float, Any]], list[dict[str, str]]]]:
    """An ``image`` publisher, a ``send`` that times a frame's round trip to ``descriptors``
    (ros_round_trip.stamped_round_trip) and the values of every /diagnostics status received, on a node in a context of
    its own spun by a single-threaded executor in a thread, as node_main spins a node."""
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = Node("camera_client", context=context)
    executor.add_node(node)
    statuses: list[dict[str, str]] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        statuses.extend({kv.key: kv.value for kv in status.values} for status in msg.status)

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    send = stamped_round_trip(node, Image, "descriptors")
    camera = node.create_publisher(Image, "image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    spinner = threading.Thread(
        target=lambda: [executor.spin_once(timeout_sec=0.05) for _ in iter(context.ok, False)], daemon=True
    )
    spinner.start()
    try:
        yield camera, send, statuses
    finally:
        executor.shutdown(timeout_sec=2.0)
        rclpy.shutdown(context=context)
        spinner.join(timeout=5.0)


def _latencies(camera: Any, send: Callable[..., tuple[float, Any]], frames: list) -> list[float]:
    """Seconds from publishing each frame to its descriptors' arrival (a frame lost to start-up is sent again)."""
    seconds = []
    for stamp, frame in enumerate(frames, start=1):
        msg = numpy_to_image(frame, "rgb8")
        msg.header.stamp = Time(sec=stamp)
        seconds.append(send(camera, msg, resend_every=5.0)[0])  # the first frames may meet a node still loading
        time.sleep(FRAME_GAP_S)
    return seconds


def _in_own_process(command: list[str], frames: list, network_time: bool) -> dict[str, float]:
    """A node started on its own (``command``) answering ``frames``: median latency, and with ``network_time`` the
    network's median time that the node reports on /diagnostics (NETWORK_MS_KEY, over its last frames: these)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    try:
        with _camera_client() as (camera, send, statuses):
            assert wait_for(lambda: camera.get_subscription_count() > 0, timeout=120), f"{command} did not start"
            timed = {"latency_ms": 1000 * statistics.median(_latencies(camera, send, frames)[2:])}  # 2 warm-ups
            if network_time:
                seen = len(statuses)
                assert wait_for(lambda: any(NETWORK_MS_KEY in s for s in statuses[seen:]), timeout=10)
                timed["network_ms"] = float(next(s for s in reversed(statuses) if NETWORK_MS_KEY in s)[NETWORK_MS_KEY])
    finally:
        process.terminate()
        process.wait(timeout=10)
    return timed


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) with the repository on PYTHONPATH (the echo node imports the package from
    a checkout)."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[1])
    return env | {"PYTHONPATH": os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))}


def measure(threads: int) -> dict[str, Any]:
    """Floor and per-runtime latency, network time and overhead (also as a ratio to the network) per size."""
    figures: dict[str, Any] = {"frames": FRAMES, "profile": os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")}
    videos = {size: textured_object_video(FRAMES[size] + 2, h, w, seed=1).frames for size, (h, w) in SIZES.items()}
    echo = [sys.executable, str(Path(__file__).with_name("descriptor_echo_node.py"))]
    floor = {size: _in_own_process(echo, frames, False)["latency_ms"] for size, frames in videos.items()}
    figures["floor_ms"] = {size: round(ms, 1) for size, ms in floor.items()}
    for runtime in RUNTIMES:
        params = {"image_qos": "reliable", "publish_viz": "false", "device": "cpu", "runtime": runtime}
        params |= {"num_threads": threads, "diagnostics_period": 0.5}
        command = [sys.executable, "-m", "dense_descriptors_ros.nodes.descriptor_node", "--ros-args"]
        command += [arg for k, v in params.items() for arg in ("-p", f"{k}:={v}")]
        row = {}
        for size, frames in videos.items():
            timed = _in_own_process(command, frames, True)
            overhead = timed["latency_ms"] - timed["network_ms"]
            row[size] = {key: round(value, 1) for key, value in timed.items()}
            row[size] |= {"overhead_ms": round(overhead, 1), "overhead_ratio": round(overhead / timed["network_ms"], 3)}
            row[size]["above_floor_ratio"] = round((overhead - floor[size]) / timed["network_ms"], 3)
        figures[runtime] = row
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="descriptor_node's num_threads")
    print(json.dumps(measure(parser.parse_args().threads)))


if __name__ == "__main__":
    main()
