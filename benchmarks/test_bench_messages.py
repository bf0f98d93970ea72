"""The ROS overhead of descriptor_node: image in -> descriptors out, minus the network's own time; message sizes.

Run: `bash scripts/run_tests.sh -m bench -s benchmarks/test_bench_messages.py`.
Prints one JSON line. descriptor_node runs the out-of-the-box model (defaults, ``max_side`` 640: inference at the
camera's size here) on 320x240 and 640x480 rgb8 frames, in this process's graph (the same RMW, DDS serialisation and
executors as separate processes, without the loopback copy). Per message kind: ``32FC`` and ``16FC`` (the network's
own stride-4 map, the default), and ``32FC_full`` (upsampled to the inference resolution, ``max_output_side`` =
width: what the node published before) for comparison. Per kind and size: median latency from publishing the image
to receiving the descriptors; inference = the node's own ``compute_coarse_tensor`` call on that very frame (the
network alone, timed around the engine's method in the node's worker thread), so each frame's overhead (latency -
inference) is measured under the same load as its inference; medians over frames of the overhead, its ratio to
inference (target <= 0.2), and bytes per message. The kinds take turns on every frame.

The floor: a plain rclpy node in the same graph that answers each image with a ready-made message of the same
size as the node's (its subscription callback publishes it: no worker thread, no decoding, no descriptor
conversion), timed the same way on the same frame right after the node: two DDS hops, the executor and rclpy's
message conversions, which no node can avoid. ``above_floor_ms`` is the median over frames of (overhead - floor):
what descriptor_node itself adds. ``stages_ms`` splits the node's latency where its subscription callback handed
the frame to the worker thread, where the worker picked it up, around the network and at its publish call (medians
over frames; see ``_stages``).

``test_descriptor_node_in_its_own_process`` measures what a deployed node sees: descriptor_node started as its own
process (``python -m dense_descriptors_ros.nodes.descriptor_node``, node_main's single-threaded executor, as ``ros2
run`` starts it) per runtime (``auto`` = OpenVINO here, and ``torch``), a camera and a receiver in this process on a
single-threaded executor; median latency from publishing an image to receiving its descriptors (32FC, the default
message), against the network's median time that the node reports on /diagnostics (``network ms``, over all of
these frames), a fresh node per runtime and size. The floor here: ``benchmarks/descriptor_echo_node.py`` in its own
process, answering each image with a ready-made message of the same size (two DDS hops between processes).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import rclpy
import torch
from builtin_interfaces.msg import Time
from descriptor_echo_node import Echo
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_round_trip import stamped_round_trip
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import NETWORK_MS_KEY, DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.bench
SIZES = {"320x240": (240, 320), "640x480": (480, 640)}
REPEATS = {"320x240": 15, "640x480": 7}  # timed frames per size and kind, after one warm-up frame
THREADS = 2
TARGET = 0.2  # overhead / inference


def _kinds(width: int) -> dict[str, dict]:
    return {
        "32FC": {"descriptor_encoding": "32FC", "max_output_side": 0},
        "16FC": {"descriptor_encoding": "16FC", "max_output_side": 0},
        "32FC_full": {"descriptor_encoding": "32FC", "max_output_side": width},
    }


def _time_calls(obj: object, method: str) -> list[list[float]]:
    """Replace ``obj.method`` by a wrapper that appends ``[start]`` (``perf_counter``) to the returned list when a
    call begins and the end time to that entry when it returns (the output may arrive before the publishing call
    returned)."""
    run = getattr(obj, method)
    calls: list[list[float]] = []

    def timed(*args, **kwargs):
        call = [time.perf_counter()]
        calls.append(call)
        result = run(*args, **kwargs)
        call.append(time.perf_counter())
        return result

    setattr(obj, method, timed)
    return calls


def _stages(sent: float, received: float, put: float, process: float, network: list[float], publish: float) -> dict:
    """One frame's time (seconds) from the image's publishing to the descriptors' arrival, split where the node's
    subscription callback handed the image to the worker, where the worker picked it up, around the network and
    where the node called publish."""
    return {
        "to_callback": put - sent,  # rclpy conversion, DDS hop, executor, the node's subscription callback
        "hand_over": process - put,  # the worker thread wakes up and takes the image
        "before_network": network[0] - process,  # subscriber count, image decoding, float tensor
        "after_network": publish - network[1],  # finiteness check, NHWC copy, filling the message
        "publish_to_arrival": received - publish,  # rclpy conversion, DDS hop, executor, receiving callback
    }


def test_descriptor_node_ros_overhead(ros, node_publisher, round_trip):
    torch.set_num_threads(THREADS)
    figures = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine()}
    figures |= {"threads": THREADS, "frames": REPEATS, "target_overhead_ratio": TARGET}
    figures["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    node = ros.add(
        DescriptorNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("device", value="cpu"),
                Parameter("image_qos", value="reliable"),
                Parameter("publish_viz", value=False),
            ],
        )
    )
    node.trigger_configure()
    node.trigger_activate()
    send = round_trip(Image, "descriptors")
    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    camera = ros.node("camera").create_publisher(Image, "image", reliable)
    descriptors = node_publisher(node, "descriptors")
    echo = Echo(ros.node("echo"), "echo/image", "echo/descriptors")
    send_echo = round_trip(Image, "echo/descriptors")
    echo_camera = ros.node("echo_camera").create_publisher(Image, "echo/image", reliable)
    assert wait_for(lambda: camera.get_subscription_count() > 0 and descriptors.get_subscription_count() > 0)
    assert wait_for(lambda: echo_camera.get_subscription_count() > 0 and echo.publisher.get_subscription_count() > 0)
    figures["model_output_stride"] = node.engine.output_stride
    figures["descriptor_dim"] = node.engine.descriptor_dim
    network_calls = _time_calls(node.engine, "compute_coarse_tensor")
    put_calls = _time_calls(node.worker, "put")
    process_calls = _time_calls(node, "process")
    publish_calls = _time_calls(descriptors, "publish")
    stamp = 0
    for size_name, (h, w) in SIZES.items():
        frames = textured_object_video(REPEATS[size_name] + 1, h, w, seed=1).frames
        kinds = _kinds(w)
        latency: dict[str, list[float]] = {kind: [] for kind in kinds}
        inference: dict[str, list[float]] = {kind: [] for kind in kinds}
        floor: dict[str, list[float]] = {kind: [] for kind in kinds}
        stages: dict[str, list[dict]] = {kind: [] for kind in kinds}
        sizes: dict[str, int] = {}
        for frame in frames:
            for kind, params in kinds.items():
                results = node.set_parameters([Parameter(k, value=v) for k, v in params.items()])
                assert all(r.successful for r in results)
                stamp += 1
                msg = numpy_to_image(frame, "rgb8")
                msg.header.stamp = Time(sec=stamp)
                for calls in (network_calls, put_calls, process_calls, publish_calls):
                    calls.clear()
                sent = time.perf_counter()
                seconds, out = send(camera, msg)
                # The node ran the network once for this frame, and published once.
                ((put, *_),), ((process, *_),), (network,) = put_calls, process_calls, network_calls
                ((publish, *_),) = publish_calls
                latency[kind].append(seconds)
                inference[kind].append(network[1] - network[0])
                stages[kind].append(_stages(sent, sent + seconds, put, process, network, publish))
                sizes[kind] = len(out.data)
                assert out.encoding.startswith(params["descriptor_encoding"])
                echo.reply = out  # the same bytes back, the same way
                floor_seconds, echoed = send_echo(echo_camera, msg)
                assert len(echoed.data) == len(out.data)
                floor[kind].append(floor_seconds)
        row = {}
        for kind in kinds:  # frame 0 warms up
            overheads = [t - n for t, n in zip(latency[kind][1:], inference[kind][1:], strict=True)]
            above_floor = [o - f for o, f in zip(overheads, floor[kind][1:], strict=True)]
            inference_s = statistics.median(inference[kind][1:])
            row[kind] = {
                "latency_ms": round(1000 * statistics.median(latency[kind][1:]), 1),
                "inference_ms": round(1000 * inference_s, 1),
                "overhead_ms": round(1000 * statistics.median(overheads), 1),
                "overhead_ratio": round(statistics.median(overheads) / inference_s, 3),
                "floor_ms": round(1000 * statistics.median(floor[kind][1:]), 1),
                "above_floor_ms": round(1000 * statistics.median(above_floor), 1),
                "above_floor_ratio": round(statistics.median(above_floor) / inference_s, 3),
                "stages_ms": {
                    stage: round(1000 * statistics.median(frame[stage] for frame in stages[kind][1:]), 2)
                    for stage in stages[kind][0]
                },
                "message_bytes": sizes[kind],
            }
        figures[size_name] = row
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    figures["target_met_above_floor"] = all(
        figures[s][k]["above_floor_ratio"] <= TARGET for s in SIZES for k in ("32FC", "16FC")
    )
    figures["target_met"] = all(figures[s][k]["overhead_ratio"] <= TARGET for s in SIZES for k in ("32FC", "16FC"))
    print(json.dumps({"benchmark": "messages", **figures}))
    assert all(figures[s]["16FC"]["message_bytes"] * 2 == figures[s]["32FC"]["message_bytes"] for s in SIZES)


OWN_PROCESS_FRAMES = {"320x240": 20, "640x480": 10}  # timed frames per size, after two warm-up frames
OWN_PROCESS_RUNTIMES = ("auto", "torch")
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
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_child_env())
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


def _child_env() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH (the echo node imports the package from a checkout)."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}


def test_descriptor_node_in_its_own_process():
    figures = {"date": time.strftime("%Y-%m-%d"), "threads": THREADS, "frames": OWN_PROCESS_FRAMES}
    figures["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    videos = {
        size: textured_object_video(OWN_PROCESS_FRAMES[size] + 2, h, w, seed=1).frames for size, (h, w) in SIZES.items()
    }
    echo = [sys.executable, str(Path(__file__).with_name("descriptor_echo_node.py"))]
    floor = {size: _in_own_process(echo, frames, False)["latency_ms"] for size, frames in videos.items()}
    figures["floor_ms"] = {size: round(ms, 1) for size, ms in floor.items()}
    for runtime in OWN_PROCESS_RUNTIMES:
        params = {"image_qos": "reliable", "publish_viz": "false", "device": "cpu", "runtime": runtime}
        params |= {"num_threads": THREADS, "diagnostics_period": 0.5}
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
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    figures["target_met"] = all(figures[r][s]["overhead_ratio"] <= TARGET for r in OWN_PROCESS_RUNTIMES for s in SIZES)
    print(json.dumps({"benchmark": "messages_own_process", **figures}))
