"""Ctrl-C and `docker stop`: every node process exits within 2 s of SIGINT or SIGTERM, with exit code 0 and no
traceback, whether idle, in the middle of an inference, or inactive because its activation failed, and leaves no
Fast DDS shared-memory segment behind in /dev/shm."""

import signal
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.model.checkpoint import WEIGHTS_FILE, save_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes.in_process_graph import wait_for

pytestmark = pytest.mark.ros
EXIT_SECONDS = 2.0


def _assert_clean_exits(processes, seconds):
    for name, process in processes.items():
        log = process.log()
        assert seconds[name] <= EXIT_SECONDS, f"{name} took {seconds[name]:.1f} s to exit; its output:\n{log}"
        assert process.process.returncode == 0, f"{name} exited with {process.process.returncode}:\n{log}"
        assert "Traceback" not in log, log


def test_idle_nodes_exit_within_two_seconds(
    ros, start_node, remote, exit_all_within, tmp_path, large_messages_env, fastdds_segments
):
    # With the launch files' Fast DDS profile: each node maps an 8 MB segment, which a leaking exit would leave in
    # /dev/shm (RAM) every time a node stops.
    env = large_messages_env
    processes = {
        "descriptor_node": start_node("descriptor_node", {"device": "cpu"}, env=env),
        "tracker_node": start_node("tracker_node", {"device": "cpu"}, env=env),
        "slam_node": start_node("slam_node", {"device": "cpu"}, env=env),
        "recorder_node": start_node("recorder_node", {"output_dir": str(tmp_path / "bags")}, env=env),
    }
    for name, process in processes.items():
        assert remote.wait_state(name, "active", process), f"{name} did not become active:\n{process.log()}"
    segments = {name: fastdds_segments(process.pid) for name, process in processes.items()}
    assert all(max(found.values(), default=0) >= 8 << 20 for found in segments.values()), segments
    signals = {
        "descriptor_node": signal.SIGINT,
        "tracker_node": signal.SIGTERM,
        "slam_node": signal.SIGINT,
        "recorder_node": signal.SIGTERM,
    }
    _assert_clean_exits(processes, exit_all_within(processes, signals))
    # Each process also maps the segments of the participants it reads from; the 8 MB ones are the nodes' own (this
    # test's process has Fast DDS's default 0.5 MB one, which stays).
    ours = {path for found in segments.values() for path, size in found.items() if size >= 8 << 20}
    left = sorted(path for path in ours if Path(path).exists())
    assert len(ours) >= len(processes) and not left, f"shared-memory segments left in /dev/shm: {left}"


def test_node_exits_within_two_seconds_mid_inference_and_after_failed_activation(
    ros, start_node, remote, exit_all_within, tmp_path
):
    checkpoint = save_checkpoint(tmp_path / "model", DescriptorNet(ModelConfig(descriptor_dim=8, pretrained=False)))
    weights = checkpoint / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100] + bytes(100))  # model.yaml is fine: configure passes
    processes = {
        # No resizing, torch on one thread (OpenVINO can finish a frame within the wait below): one 2400x1800
        # frame keeps the CPU busy for seconds.
        "busy": start_node(
            "descriptor_node",
            {"device": "cpu", "max_side": 0, "image_qos": "reliable", "runtime": "torch", "num_threads": 1},
            "busy",
        ),
        "broken": start_node("tracker_node", {"device": "cpu", "model_dir": str(checkpoint)}, "broken"),
    }
    assert remote.wait_state("busy", "active", processes["busy"]), processes["busy"].log()
    assert remote.wait_state("broken", "inactive", processes["broken"]), processes["broken"].log()
    descriptors = ros.collector(Image, "descriptors")
    camera = ros.node("camera").create_publisher(
        Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    assert wait_for(lambda: camera.get_subscription_count() > 0, timeout=30)
    frame = numpy_to_image(np.random.default_rng(0).integers(0, 255, (1800, 2400, 3), dtype=np.uint8), "rgb8")
    frame.header.stamp = Time(sec=1)
    camera.publish(frame)
    wait_for(lambda: False, timeout=2.0)  # the frame arrives and the inference starts
    assert descriptors == [], "the inference finished before the signal; make the frame larger"
    seconds = exit_all_within(processes, {"busy": signal.SIGINT, "broken": signal.SIGTERM})
    _assert_clean_exits(processes, seconds)
