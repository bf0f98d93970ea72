"""Swapping the descriptor network of running nodes (``~/load_model`` and the live ``model_dir`` parameter): the new
model is loaded and checked in the background and swapped in between two frames; tracks survive only a model of the
same descriptor space, the SLAM refuses another one while it has a map, a broken checkpoint keeps the old model."""

import shutil
import threading

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger

from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.model.checkpoint import model_id, save_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.nodes import descriptor_model_node
from dense_descriptors_ros.nodes.descriptor_node import DescriptorNode
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.messages.pointcloud import pointcloud2_to_array
from dense_descriptors_ros.nodes.slam_node import SlamNode
from dense_descriptors_ros.nodes.tracker_node import TrackerNode
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
QUERIES = [20.0, 20.0, 40.0, 24.0, 30.0, 36.0]


def _checkpoint(folder, seed, dim=8):
    torch.manual_seed(seed)
    return str(save_checkpoint(folder, DescriptorNet(ModelConfig(descriptor_dim=dim, pretrained=False))))


def _load_model(remote, node, model_dir):
    """Call ``/node/load_model`` with model_dir; its one SetParametersResult."""
    request = SetParameters.Request(parameters=[Parameter("model_dir", value=model_dir).to_parameter_msg()])
    response = remote.call(SetParameters, f"/{node}/load_model", request)
    assert response is not None, f"/{node}/load_model did not answer"
    (result,) = response.results
    return result


def _swapped(node, fingerprint):
    """Wait until ``node`` runs the model of ``fingerprint`` and no load is in progress."""
    return wait_for(lambda: node.fingerprint == fingerprint and node._loading is None, timeout=60)


def _image(sec, h=48, w=64):
    msg = numpy_to_image(np.random.default_rng(sec).integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")
    msg.header.stamp = Time(sec=sec)
    msg.header.frame_id = "camera_optical"
    return msg


def _send(pub, msg, outputs):
    """Publish ``msg`` (again while discovery races) until an output with its stamp arrives; that output."""
    for _ in range(10):
        pub.publish(msg)
        if wait_for(lambda: any(o.header.stamp.sec == msg.header.stamp.sec for o in outputs), timeout=6):
            return next(o for o in reversed(outputs) if o.header.stamp.sec == msg.header.stamp.sec)
    raise AssertionError(f"no output for stamp {msg.header.stamp.sec}")


def _logged(log_lines, node, level, *words, count=1):
    """The lines ``node`` logged at ``level`` holding all ``words``, once there are ``count`` of them (/rosout is a
    topic: lines arrive a moment after the call that logged them)."""

    def lines():
        return [text for text in log_lines(node, level) if all(word in text for word in words)]

    wait_for(lambda: len(lines()) >= count, timeout=10)
    return lines()


@pytest.fixture
def tracker(ros, active_node, rosout, tmp_path, request):
    """An active tracker_node running checkpoint ``a`` with three tracks, its camera, its tracks and the models.

    The node is named after the test: a node of an earlier test that the garbage collector finalises late (the swap
    collects) takes the /rosout publisher of a node of the same name with it."""
    models = {"a": _checkpoint(tmp_path / "a", seed=1), "b": _checkpoint(tmp_path / "b", seed=2)}
    models["a_copy"] = str(shutil.copytree(models["a"], tmp_path / "a_copy"))  # same weights: same fingerprint
    params = {"image_qos": "reliable", "stats_period": 0.0, "device": "cpu", "diagnostics_period": 0.2}
    name = request.node.name.removeprefix("test_")[:40]
    node = active_node(TrackerNode, name, input="image", model_dir=models["a"], query_points=QUERIES, **params)
    clouds = ros.collector(PointCloud2, "tracks")
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0)
    first = pointcloud2_to_array(_send(pub, _image(1), clouds))
    assert list(first["id"]) == [0, 1, 2]
    return node, pub, clouds, models


def test_tracks_survive_a_model_of_the_same_descriptor_space(tracker, remote, rosout, log_lines):
    node, pub, clouds, models = tracker
    result = _load_model(remote, node.get_name(), models["a_copy"])
    assert result.successful and "loading" in result.reason, result.reason
    assert _swapped(node, model_id(models["a"])) and node._in_use[0] == models["a_copy"]
    assert remote.get_parameter(node.get_name(), "model_dir") == models["a_copy"]
    points = pointcloud2_to_array(_send(pub, _image(2), clouds))
    assert list(points["id"]) == [0, 1, 2]
    assert not any("tracks reset" in text for text in log_lines(node.get_name()))
    assert node.worker.counts.failed == 0


def test_tracks_are_reset_for_a_model_of_another_descriptor_space(tracker, remote, rosout, log_lines):
    node, pub, clouds, models = tracker
    (result,) = remote.set_parameters(node.get_name(), model_dir=models["b"])  # `ros2 param set`: the same path
    assert result.successful
    assert _swapped(node, model_id(models["b"]))
    assert len(pointcloud2_to_array(_send(pub, _image(2), clouds))) == 0
    assert node.tracker.num_tracks == 0
    assert _logged(log_lines, node.get_name(), Log.WARN, "tracks reset", model_id(models["b"]))


def test_a_load_starts_once_model_dir_is_stored_so_a_fast_failure_sets_it_back(tracker, tmp_path, monkeypatch):
    """A checkpoint that fails at once (here: a hash mismatch) used to race the parameter service: the background
    load set model_dir back before rclpy stored the new value, which then stayed while the old model ran."""
    node, _, _, models = tracker
    seen_at_start = []

    class RecordingThread(threading.Thread):
        def start(self) -> None:
            seen_at_start.append(node.get_parameter("model_dir").value)
            super().start()

    monkeypatch.setattr(descriptor_model_node.threading, "Thread", RecordingThread)
    garbled = _checkpoint(tmp_path / "g", seed=3)
    (tmp_path / "g" / "weights.pt").write_bytes(b"not a torch file")
    assert node.set_parameters([Parameter("model_dir", value=garbled)])[0].successful
    assert seen_at_start == [garbled]
    assert wait_for(lambda: node._loading is None and node.get_parameter("model_dir").value == models["a"])
    assert node.config.model_dir == models["a"] and node.fingerprint == model_id(models["a"])


def test_a_broken_checkpoint_keeps_the_old_model(tracker, ros, remote, rosout, log_lines, diagnostic_value, tmp_path):
    node, pub, clouds, models = tracker
    diagnostics = ros.collector(DiagnosticArray, "/diagnostics")
    engine = node.engine

    result = _load_model(remote, node.get_name(), str(tmp_path / "missing"))  # refused in the answer
    assert not result.successful and "not found" in result.reason, result.reason

    nan_net = DescriptorNet(ModelConfig(descriptor_dim=8, pretrained=False))
    with torch.no_grad():
        for param in nan_net.parameters():
            param.fill_(float("nan"))
    broken = {"nan": str(save_checkpoint(tmp_path / "nan", nan_net)), "garbled": _checkpoint(tmp_path / "g", seed=3)}
    (tmp_path / "g" / "weights.pt").write_bytes(b"not a torch file")
    for name, folder in broken.items():  # they fail in the background: the parameter is set back
        result = _load_model(remote, node.get_name(), folder)
        assert result.successful and "loading" in result.reason, (name, result.reason)
        assert wait_for(
            lambda: node._loading is None and remote.get_parameter(node.get_name(), "model_dir") == models["a"]
        )
        assert node.engine is engine and node.fingerprint == model_id(models["a"])
    errors = _logged(log_lines, node.get_name(), Log.ERROR, "not loaded", count=2)
    assert len(errors) == 2 and "non-finite" in errors[0] and "weights.pt" in errors[1], errors
    assert all(models["a"] in text for text in errors)
    assert wait_for(
        lambda: diagnostic_value(diagnostics, f"/{node.get_name()}", "model loads failed") == "2", timeout=10
    )
    assert diagnostic_value(diagnostics, f"/{node.get_name()}", "model") == model_id(models["a"])
    assert list(pointcloud2_to_array(_send(pub, _image(2), clouds))["id"]) == [0, 1, 2]  # tracks kept

    result = _load_model(remote, node.get_name(), 3)  # not a folder name
    assert not result.successful and "model_dir, a string" in result.reason


def test_descriptor_node_publishes_the_new_descriptor_size_after_a_swap(ros, active_node, remote, tmp_path):
    node = active_node(DescriptorNode, model_dir="untrained", image_qos="reliable", device="cpu")
    descriptors = ros.collector(Image, "descriptors")
    pub = ros.node("camera").create_publisher(Image, "image", RELIABLE)
    assert wait_for(lambda: pub.get_subscription_count() > 0 and node._pubs["descriptors"].get_subscription_count())
    assert _send(pub, _image(1), descriptors).encoding == "32FC16"
    model = _checkpoint(tmp_path / "d8", seed=4, dim=8)
    assert _load_model(remote, "descriptor_node", model).successful
    assert _swapped(node, model_id(model))
    assert _send(pub, _image(2), descriptors).encoding == "32FC8"
    assert node.worker.counts.failed == 0


def test_slam_refuses_another_model_while_it_has_a_map(
    ros, active_node, remote, stereo_rig, rosout, log_lines, tmp_path
):
    params = {"image_qos": "reliable", "slam.feature_type": "learned", "device": "cpu", "model_dir": "untrained"}
    node = active_node(SlamNode, **params)
    untrained = node.fingerprint
    odometry = ros.collector(Odometry, "odometry")
    assert wait_for(stereo_rig.connected)
    model = _checkpoint(tmp_path / "slam_model", seed=5)
    frames = synthetic_stereo_sequence(stereo_rig.camera, 2, turns=0.05, with_descriptors=False, seed=6)
    stereo_rig.publish(frames[0], 100.0)
    assert wait_for(lambda: len(odometry) >= 1, timeout=120) and node.slam.map is not None

    result = _load_model(remote, "slam_node", model)
    assert not result.successful and "map" in result.reason, result.reason
    assert node.fingerprint == untrained and remote.get_parameter("slam_node", "model_dir") == "untrained"
    assert _logged(log_lines, "slam_node", Log.ERROR, "refused", "~/reset")

    assert remote.call(Trigger, "/slam_node/reset", Trigger.Request()).success  # no map: another model is taken
    result = _load_model(remote, "slam_node", model)
    assert result.successful, result.reason
    assert _swapped(node, model_id(model)) and node.slam is None
    stereo_rig.publish(frames[1], 100.1)
    assert wait_for(lambda: len(odometry) >= 2, timeout=120)
    assert node.slam.model_id == model_id(model)
