"""slam_node with real rclpy: rendered rectified stereo pairs + CameraInfo in, Odometry / Path / status out."""

import json

import numpy as np
import pytest
from builtin_interfaces.msg import Time
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
from dense_descriptors_ros.nodes.in_process_graph import wait_for
from dense_descriptors_ros.nodes.slam_node import SlamNode
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


def _run(ros, frames, **params):
    overrides = [Parameter("image_qos", value="reliable")] + [Parameter(k, value=v) for k, v in params.items()]
    node = ros.add(SlamNode(context=ros.context, parameter_overrides=overrides))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    odometry = ros.collector(Odometry, "odometry")
    paths = ros.collector(Path, "path")
    status = ros.collector(String, "status")
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
        assert wait_for(lambda i=i: len(odometry) > i, timeout=60), f"no odometry for pair {i}"
    return node, odometry, paths, status


def test_orb_slam_odometry_and_path_follow_ground_truth(ros):
    frames = synthetic_stereo_sequence(CAMERA, 12, turns=0.1, with_descriptors=False, seed=1)
    _node, odometry, paths, status = _run(ros, frames, **{"slam.feature_type": "orb"})
    assert len(odometry) == len(frames)
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
    assert wait_for(lambda: paths and len(paths[-1].poses) == len(frames), timeout=10)
    assert paths[-1].header.frame_id == "map"
    last = json.loads(status[-1].data)
    assert last["state"] in ("tracking", "relocalized") and last["tracked"] > 0


def test_services_and_bad_input(ros, tmp_path):
    frames = synthetic_stereo_sequence(CAMERA, 3, turns=0.02, with_descriptors=False, seed=2)
    map_dir = tmp_path / "map"
    node, _odometry, _, _ = _run(ros, frames, **{"slam.feature_type": "orb", "map_dir": str(map_dir)})
    client_node = ros.node("operator")
    for service, expect in (("save_map", True), ("reset", True), ("load_map", True)):
        client = client_node.create_client(Trigger, f"/slam_node/{service}")
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert wait_for(future.done, timeout=30)
        assert future.result().success is expect, future.result().message
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
