"""slam_node with real rclpy: rendered rectified stereo pairs + CameraInfo in, Odometry / pose / Path / status out;
mapping and localisation in a saved map."""

import json
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from dense_descriptors_ros.geometry.camera import StereoCamera, optical_to_body_pose
from dense_descriptors_ros.io.image_conversion import numpy_to_image
from dense_descriptors_ros.nodes.in_process_graph import InProcessGraph, wait_for
from dense_descriptors_ros.nodes.slam_node import SlamNode
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CAMERA = StereoCamera(fx=200.0, fy=200.0, cx=160.0, cy=120.0, baseline=0.12, width=320, height=240)


def _infos(camera=CAMERA):
    infos = []
    for tx in (0.0, -camera.fx * camera.baseline):
        info = CameraInfo(width=camera.width, height=camera.height)
        info.k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
        info.p = [camera.fx, 0.0, camera.cx, tx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        infos.append(info)
    return infos


def _stamp(msg, t):
    sec = int(t)
    msg.header.stamp = Time(sec=100 + sec, nanosec=round((t - sec) * 1e9))
    msg.header.frame_id = "left_camera_optical"
    return msg


def _node(ros, **params) -> SlamNode:
    overrides = [Parameter("image_qos", value="reliable")] + [Parameter(k, value=v) for k, v in params.items()]
    return ros.add(SlamNode(context=ros.context, parameter_overrides=overrides))


def _run(ros, frames, **params):
    """Start a slam_node and play ``frames`` into it one pair at a time; returns it and what it published."""
    node = _node(ros, **params)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    out = {
        "odometry": ros.collector(Odometry, "odometry"),
        "pose": ros.collector(PoseWithCovarianceStamped, "pose"),
        "path": ros.collector(Path, "path"),
        "status": ros.collector(String, "status"),
    }
    rig = ros.node("stereo_camera")
    pubs = {
        name: rig.create_publisher(kind, name, RELIABLE)
        for name, kind in [
            ("left/image_rect", Image),
            ("right/image_rect", Image),
            ("left/camera_info", CameraInfo),
            ("right/camera_info", CameraInfo),
        ]
    }
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))
    left_info, right_info = _infos()
    for i, frame in enumerate(frames):
        pubs["left/camera_info"].publish(_stamp(left_info, frame.stamp))
        pubs["right/camera_info"].publish(_stamp(right_info, frame.stamp))
        if i == 0:
            assert wait_for(lambda: len(node.infos) == 2, timeout=10)
        pubs["left/image_rect"].publish(_stamp(numpy_to_image(frame.left, "mono8"), frame.stamp))
        pubs["right/image_rect"].publish(_stamp(numpy_to_image(frame.right, "mono8"), frame.stamp))
        # One pair at a time: the node keeps only the newest pair, and this test wants every one.
        assert wait_for(lambda i=i: len(out["status"]) > i, timeout=60), f"no status for pair {i}"
    return node, out


def _call(ros, service: str) -> Trigger.Response:
    client = ros.node(f"operator_{len(ros.nodes)}").create_client(Trigger, f"/slam_node/{service}")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=30)
    return future.result()


def test_orb_slam_odometry_and_path_follow_ground_truth(ros):
    frames = synthetic_stereo_sequence(CAMERA, 12, turns=0.1, with_descriptors=False, seed=1)
    # Synchronous mapping: how far a pose is from the truth must not depend on how busy the machine is.
    params = {"slam.feature_type": "orb", "slam.mapping.synchronous": True}
    _node, out = _run(ros, frames, **params)
    odometry, paths, status = out["odometry"], out["path"], out["status"]
    assert wait_for(lambda: len(odometry) == len(frames), timeout=10)
    for frame, odom in zip(frames, odometry, strict=True):
        assert odom.header.stamp.sec == 100 + int(frame.stamp)
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    # Compare relative motion (SLAM starts at identity) in body axes against the ground truth.
    T0 = frames[0].T_world_cam
    errors = []
    for frame, odom in zip(frames, odometry, strict=True):
        truth = optical_to_body_pose(np.linalg.inv(T0) @ frame.T_world_cam)
        p = odom.pose.pose.position
        errors.append(np.linalg.norm(truth[:3, 3] - [p.x, p.y, p.z]))
        q = odom.pose.pose.orientation
        rot = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        assert np.degrees(Rotation.from_matrix(rot.T @ truth[:3, :3]).magnitude()) < 2.0
    path_length = sum(
        np.linalg.norm(frames[i + 1].T_world_cam[:3, 3] - frames[i].T_world_cam[:3, 3]) for i in range(len(frames) - 1)
    )
    assert max(errors) < 0.05 * max(path_length, 0.1), (errors, path_length)
    # Tracked poses carry a covariance (pose-only estimate + the keyframe's GTSAM marginal): a few mm, not zeros.
    for odom in odometry[1:]:
        covariance = np.reshape(odom.pose.covariance, (6, 6))
        np.testing.assert_allclose(covariance, covariance.T, atol=1e-12)
        assert np.linalg.eigvalsh(covariance).min() > 0 and np.sqrt(covariance[0, 0]) < 0.05
    assert wait_for(lambda: paths and len(paths[-1].poses) == len(frames), timeout=10)
    assert paths[-1].header.frame_id == "map"
    last = json.loads(status[-1].data)
    assert last["state"] in ("tracking", "relocalized") and last["tracked"] > 0


def test_services_and_bad_input(ros, tmp_path):
    frames = synthetic_stereo_sequence(CAMERA, 3, turns=0.02, with_descriptors=False, seed=2)
    map_dir = tmp_path / "map"
    node, _ = _run(ros, frames, **{"slam.feature_type": "orb", "map_dir": str(map_dir)})
    for service in ("save_map", "reset", "load_map"):
        response = _call(ros, service)
        assert response.success, response.message
    assert any(map_dir.iterdir())
    # A left image of the wrong size is rejected by the SLAM with a clear message; the node carries on.
    bad = ros.node("bad_rig")
    left_pub = bad.create_publisher(Image, "left/image_rect", RELIABLE)
    right_pub = bad.create_publisher(Image, "right/image_rect", RELIABLE)
    assert wait_for(lambda: left_pub.get_subscription_count() > 0 and right_pub.get_subscription_count() > 0)
    small = np.zeros((10, 10), np.uint8)
    left_pub.publish(_stamp(numpy_to_image(small, "mono8"), 50.0))
    right_pub.publish(_stamp(numpy_to_image(small, "mono8"), 50.0))
    assert wait_for(lambda: node.problems.total >= 1, timeout=20), node.problems.counts
    assert node.worker.counts.failed == 0


def test_localization_mode_relocalises_in_a_map_saved_by_a_mapping_run(ros, tmp_path):
    frames = synthetic_stereo_sequence(CAMERA, 30, turns=0.3, with_descriptors=False, seed=3)
    params = {"slam.feature_type": "orb", "map_dir": str(tmp_path / "map")}
    with InProcessGraph() as mapping_graph:  # a mapping run (GTSAM in its worker process), saved with ~/save_map
        mapper, _ = _run(mapping_graph, frames[:24], **params)
        response = _call(mapping_graph, "save_map")
        assert response.success, response.message
        saved_keyframes = len(mapper.slam.map.keyframes)
        mapped = mapper.slam.trajectory()  # where the mapping run put each frame, in the map frame

    # A new node in localisation mode loads that map at start-up and is replayed a part of the sequence.
    node, out = _run(ros, frames[8:20], mode="localization", **params)
    status = [json.loads(m.data) for m in out["status"]]
    assert status[0]["mode"] == "localization" and status[0]["state"] == "relocalized"
    assert [s["state"] for s in status[1:]] == ["tracking"] * (len(status) - 1)
    assert not any(s["keyframe"] for s in status)
    assert len(node.slam.map.keyframes) == saved_keyframes  # tracked without adding keyframes
    assert wait_for(lambda: len(out["pose"]) == len(status) == len(out["odometry"]), timeout=10)
    # Poses in the map frame agree with where the mapping run placed the same frames.
    for T_mapped, pose in zip(mapped.poses[8:20], out["pose"], strict=True):
        assert pose.header.frame_id == "map"
        p = pose.pose.pose.position
        assert np.linalg.norm(optical_to_body_pose(T_mapped)[:3, 3] - [p.x, p.y, p.z]) < 0.05
    # odom starts on the map at the first fix; with no jump since, map -> odom stays the identity.
    for odom, pose in zip(out["odometry"], out["pose"], strict=True):
        assert odom.header.frame_id == "odom" and odom.pose.pose == pose.pose.pose
    np.testing.assert_allclose(node.map_to_odom, np.eye(4))


def test_localization_mode_refuses_a_map_of_another_model(ros, tmp_path, capfd):
    frames = synthetic_stereo_sequence(CAMERA, 2, turns=0.02, seed=2)
    slam = StereoSlam(CAMERA, StereoSlamConfig(), model_id="another-model")  # learned features of another model
    for f in frames:
        slam.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc)
    slam.save_map(tmp_path / "map")
    slam.close()
    node = _node(ros, mode="localization", map_dir=str(tmp_path / "map"))  # learned, the untrained network
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "made with descriptor model 'another-model', this SLAM runs 'pretrained-" in capfd.readouterr().err
    missing = _node(ros, mode="localization", map_dir=str(tmp_path / "nothing"), **{"slam.feature_type": "orb"})
    assert missing.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "mode localization needs a saved map in map_dir" in capfd.readouterr().err


def test_activation_without_gtsam_fails_naming_it(ros, monkeypatch, capfd):
    node = _node(ros, **{"slam.feature_type": "orb"})
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    monkeypatch.setitem(sys.modules, "gtsam", None)  # import gtsam now raises ImportError
    assert node.trigger_activate() == TransitionCallbackReturn.FAILURE
    assert "pip install gtsam==4.3.0" in capfd.readouterr().err
