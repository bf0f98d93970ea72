"""Soak: 30 Hz for 10 000 frames (5.6 minutes) of 320x240 rgb8 into tracker_node and descriptor_node, run as
processes with their default parameters (sensor-data QoS, untrained network, 30 automatic points), as `ros2 run`
starts them. The RSS of each process is sampled every 5 s; prints the RSS growth after the first minute (median of
the last minute minus median of the second; goal: at most 20 MB) and each node's received / processed / dropped /
lost counts from /diagnostics, as one JSON line.

Run: `bash scripts/run_tests.sh -q -s -m bench benchmarks/test_bench_soak.py` (its own network namespace).
DDR_SOAK_FRAMES and DDR_SOAK_SIZE (e.g. 640x480) change the number of frames and their size.
"""

import json
import os
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = [pytest.mark.bench, pytest.mark.ros]
FRAMES = int(os.environ.get("DDR_SOAK_FRAMES", "10000"))
WIDTH, HEIGHT = (int(v) for v in os.environ.get("DDR_SOAK_SIZE", "320x240").split("x"))
RATE_HZ = 30.0
SAMPLE_PERIOD_S = 5.0
WARM_UP_S = 60.0
GOAL_MB = 20.0
NODES = ("tracker_node", "descriptor_node")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _counts(diagnostics: list, node: str) -> dict[str, str]:
    for array in reversed(list(diagnostics)):
        for status in array.status:
            if status.name == f"/{node}":
                return {v.key: v.value for v in status.values}
    return {}


def test_soak_tracker_and_descriptor_nodes(ros, start_node):
    processes = {
        "tracker_node": start_node("tracker_node", {"device": "cpu", "auto_points": 30, "stats_period": 0.0}),
        "descriptor_node": start_node("descriptor_node", {"device": "cpu"}),
    }
    diagnostics = ros.collector(DiagnosticArray, "/diagnostics", depth=100)
    assert wait_for(lambda: all(_counts(diagnostics, n) for n in NODES), timeout=180), {
        n: p.log() for n, p in processes.items()
    }
    outputs = {"tracks": 0, "descriptors": 0}
    sink = ros.node("sink")
    latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    for topic, kind in (("tracks", PointCloud2), ("descriptors", Image)):  # descriptor_node computes for subscribers
        sink.create_subscription(kind, topic, lambda _m, t=topic: outputs.__setitem__(t, outputs[t] + 1), latest)
    camera = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    assert wait_for(lambda: camera.get_subscription_count() >= 2, timeout=30)
    messages = [numpy_to_image(frame, "rgb8") for frame in textured_object_video(30, HEIGHT, WIDTH, seed=7).frames]

    samples: list[tuple[float, dict[str, float]]] = []
    start = time.monotonic()
    next_sample = start
    for i in range(FRAMES):
        due = start + i / RATE_HZ
        time.sleep(max(0.0, due - time.monotonic()))
        msg = messages[i % len(messages)]
        msg.header.stamp = Time(sec=1000 + i // 30, nanosec=round((i % 30) / RATE_HZ * 1e9))
        camera.publish(msg)
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - start, {n: _rss_mb(p.pid) for n, p in processes.items()}))
            next_sample += SAMPLE_PERIOD_S
    elapsed = time.monotonic() - start
    time.sleep(5.0)  # the last frames and a diagnostics message
    samples.append((time.monotonic() - start, {n: _rss_mb(p.pid) for n, p in processes.items()}))

    # Allocations come and go by a hundred MB at 640x480: compare the medians of the minute after the warm-up and
    # of the last minute.
    end = samples[-1][0]
    baseline = {n: np.median([r[n] for t, r in samples if WARM_UP_S <= t < 2 * WARM_UP_S]) for n in NODES}
    final = {n: np.median([r[n] for t, r in samples if t >= end - WARM_UP_S]) for n in NODES}
    growth = {n: round(float(final[n] - baseline[n]), 1) for n in NODES}
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "frames": FRAMES,
        "size": f"{WIDTH}x{HEIGHT}",
        "publish_rate_hz": round(FRAMES / elapsed, 2),
        "rss_mb_first_sample": {n: round(samples[0][1][n], 1) for n in NODES},
        "rss_mb_median_second_minute": {n: round(float(baseline[n]), 1) for n in NODES},
        "rss_mb_median_last_minute": {n: round(float(final[n]), 1) for n in NODES},
        "rss_growth_mb_after_first_minute": growth,
        "rss_mb_every_5s": {n: [round(rss[n], 1) for _, rss in samples] for n in NODES},
        "counts": {n: _counts(diagnostics, n) for n in NODES},
        "outputs": outputs,
        "output_rate_hz": {t: round(c / elapsed, 2) for t, c in outputs.items()},
    }
    print(json.dumps(figures))
    for name, process in processes.items():
        assert process.alive(), process.log()
        assert int(figures["counts"][name]["processed"]) > 0
    assert all(g <= GOAL_MB for g in growth.values()), growth
