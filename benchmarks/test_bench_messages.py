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
process as ``ros2 run`` starts it, per runtime, against the network time the node reports, and the floor of a bare
echo node in its own process (benchmarks/own_process_latency.py), once with Fast DDS's defaults and once with the
package's profile for large messages (config/fastdds_large_messages.xml) in every process, as the launch files give
it to the nodes and a camera driver gets it from the exported variable.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from builtin_interfaces.msg import Time
from descriptor_echo_node import Echo
from matplotlib.figure import Figure
from own_process_latency import child_env
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.fastdds_profile import PROFILE_FILE, PROFILE_VARIABLES
from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.bench
SIZES = {"320x240": (240, 320), "640x480": (480, 640)}
REPEATS = {"320x240": 15, "640x480": 7}  # timed frames per size and kind, after one warm-up frame
THREADS = 2
TARGET = 0.2  # overhead / inference
REPO = Path(__file__).resolve().parents[1]


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


TRANSPORTS = {  # Fast DDS configuration of every process of the measurement: its default, or the package's profile
    "fastdds_default": None,
    "package_profile": str(REPO / "config" / PROFILE_FILE),
}


def plot_own_process(path: Path, figures: dict) -> None:
    """Per size, one bar per transport and runtime: the network's time, the bare echo's floor and what the node adds
    above it, end to end, with the overhead / network ratio at the end of the bar."""
    fig = Figure(figsize=(11, 4.2))
    for panel, size in enumerate(SIZES):
        ax = fig.add_subplot(1, len(SIZES), panel + 1)
        labels = []
        for row, (transport, runtime) in enumerate((t, r) for t in TRANSPORTS for r in ("auto", "torch")):
            cell = figures[transport][runtime][size]
            floor = figures[transport]["floor_ms"][size]
            parts = [cell["network_ms"], min(floor, cell["overhead_ms"]), max(cell["overhead_ms"] - floor, 0.0)]
            left = 0.0
            for value, colour in zip(parts, ("0.7", "tab:blue", "tab:orange"), strict=True):
                ax.barh(row, value, left=left, color=colour)
                left += value
            ax.text(left, row, f" {cell['overhead_ratio']:.2f}x", va="center", fontsize=8)
            labels.append(f"{transport.replace('_', ' ')}\n{'openvino' if runtime == 'auto' else runtime}")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ms from image published to descriptors received")
        ax.set_title(f"{size}: network (grey), two-hop floor (blue), node above it (orange)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def test_descriptor_node_in_its_own_process(tmp_path):
    """Each transport in fresh processes (benchmarks/own_process_latency.py): Fast DDS reads its profile once per
    process, so the camera's participant gets it only in a process of its own, as a camera driver started with the
    exported variable does. A plot of the latencies goes next to the JSON line ($DDR_BENCH_OUT, default a pytest
    temp folder)."""
    figures = {"date": time.strftime("%Y-%m-%d"), "threads": THREADS, "target_overhead_ratio": TARGET}
    figures["loadavg_before"] = Path("/proc/loadavg").read_text().split()[:3]
    for name, profile in TRANSPORTS.items():
        env = child_env({k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES})
        env |= {PROFILE_VARIABLES[0]: profile} if profile else {}
        script = Path(__file__).with_name("own_process_latency.py")
        run = subprocess.run(
            [sys.executable, str(script), "--threads", str(THREADS)], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-3000:]
        figures[name] = json.loads(run.stdout.strip().splitlines()[-1])
    figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    runtimes = [figures["package_profile"][r] for r in ("auto", "torch")]
    figures["target_met_with_profile"] = all(row[s]["overhead_ratio"] <= TARGET for row in runtimes for s in SIZES)
    figures["plot"] = str(Path(os.environ.get("DDR_BENCH_OUT", tmp_path)) / "messages_own_process.png")
    plot_own_process(Path(figures["plot"]), figures)
    print(json.dumps({"benchmark": "messages_own_process", **figures}))
