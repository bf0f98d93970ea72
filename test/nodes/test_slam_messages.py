"""The slam_node's message builders: Odometry (with covariance), pose, Path, TF and the map -> odom split, status and
the tracked-features image."""

import itertools
import json

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Path
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp
from dense_descriptors_ros.io.image_conversion import image_to_numpy
from dense_descriptors_ros.nodes.messages.odometry import (
    MapOdomSplit,
    append_to_path,
    odometry_message,
    odometry_transforms,
    pose_with_covariance_message,
    rotate_pose_covariance,
)
from dense_descriptors_ros.nodes.messages.slam import status_message, tracked_features_image
from dense_descriptors_ros.slam.stereo_slam import SlamResult, TrackingState

STAMP = Time(sec=12, nanosec=500)
POSE = se3_exp(np.array([1.0, -2.0, 0.5, 0.1, 0.2, -0.3]))


def _matrix(pose) -> np.ndarray:
    T = np.eye(4)
    q = pose.orientation
    T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def test_odometry_path_and_transforms():
    covariance = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * 1e-4
    odom = odometry_message(POSE, STAMP, "odom", "base_link", covariance)
    assert (odom.header.stamp, odom.header.frame_id, odom.child_frame_id) == (STAMP, "odom", "base_link")
    np.testing.assert_allclose(_matrix(odom.pose.pose), POSE, atol=1e-12)
    np.testing.assert_allclose(np.reshape(odom.pose.covariance, (6, 6)), covariance)
    pose = pose_with_covariance_message(POSE, covariance, STAMP, "map")
    assert pose.header.frame_id == "map" and pose.pose.pose == odom.pose.pose
    np.testing.assert_allclose(np.reshape(pose.pose.covariance, (6, 6)), covariance)

    path = Path()
    for _ in range(3):
        append_to_path(path, odom.pose.pose, STAMP, "map", max_length=2)
    assert len(path.poses) == 2 and path.header.frame_id == "map" and path.poses[-1].header.stamp == STAMP

    T_map_odom = se3_exp(np.array([0.3, 0.0, -0.1, 0.0, 0.0, 0.2]))
    map_odom, odom_base = odometry_transforms(odom, "map", T_map_odom)
    assert (map_odom.header.frame_id, map_odom.child_frame_id, map_odom.header.stamp) == ("map", "odom", STAMP)
    t, q = map_odom.transform.translation, map_odom.transform.rotation
    np.testing.assert_allclose([t.x, t.y, t.z], T_map_odom[:3, 3])
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), T_map_odom[:3, :3], atol=1e-12)
    assert (odom_base.header.frame_id, odom_base.child_frame_id, odom_base.header.stamp) == ("odom", "base_link", STAMP)
    t = odom_base.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], POSE[:3, 3])
    assert odom_base.transform.rotation == odom.pose.pose.orientation


def _result(pixels: np.ndarray) -> SlamResult:
    return SlamResult(
        stamp=1.0,
        T_world_cam=POSE,
        state=TrackingState.RELOCALIZED,
        tracked_pixels=pixels,
        tracked_point_ids=np.arange(len(pixels)),
        num_keypoints=40,
        num_stereo=30,
        is_keyframe=True,
        loop_closure=None,
        timings_ms={"total_ms": 12.345},
    )


def test_status_and_tracked_features_image():
    result = _result(np.array([[10.0, 20.0], [30.5, 5.0]]))
    status = json.loads(status_message(result, bad_input=3, dropped_frames=1, mode="localization").data)
    assert status == {
        "mode": "localization",
        "state": "relocalized",
        "tracked": 2,
        "keypoints": 40,
        "keyframe": True,
        "loop_closure": False,
        "tracking_ms": 12.35,
        "bad_input": 3,
        "dropped_frames": 1,
    }
    left = np.zeros((40, 50, 3), np.uint8)
    header = Header(stamp=STAMP, frame_id="left_camera_optical")
    image = tracked_features_image(left, result, header)
    assert image.encoding == "bgr8" and image.header == header
    drawn = image_to_numpy(image)
    assert drawn.shape == (40, 50, 3) and drawn[20, 13, 1] > 0 and drawn[:, :, [0, 2]].max() == 0  # green rings
    assert drawn[20, 10].max() == 0  # a ring, not a disc
    assert not left.any()  # the input image is not drawn on


def test_pose_covariance_rotates_with_the_axes():
    """A body-frame covariance that is long along body x reads long along the parent axis body x points to."""
    body = np.diag([4.0, 1.0, 1.0, 0.1, 0.2, 0.3])
    R = Rotation.from_euler("z", 90, degrees=True).as_matrix()  # body x = parent y
    parent = rotate_pose_covariance(R, body)
    np.testing.assert_allclose(np.diag(parent), [1.0, 4.0, 1.0, 0.2, 0.1, 0.3], atol=1e-12)
    np.testing.assert_allclose(rotate_pose_covariance(R.T, parent), body, atol=1e-12)


def test_map_odom_split_keeps_odometry_continuous_across_jumps():
    """REP-105: odom -> base_link follows motion only; a relocalisation jump goes into map -> odom."""
    split = MapOdomSplit()
    step = se3_exp(np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.05]))
    T_map_base = POSE.copy()
    odometry = [split.update(T_map_base, jump=False)]
    np.testing.assert_allclose(split.T_map_odom, np.eye(4))  # odom starts on the map
    for _ in range(3):
        T_map_base = T_map_base @ step
        odometry.append(split.update(T_map_base, jump=False))
    # The SLAM pose jumps by half a metre (a loop correction): odometry holds still, map -> odom takes the jump.
    jumped = se3_exp(np.array([0.5, 0.2, 0.0, 0.0, 0.0, 0.1])) @ T_map_base
    odometry.append(split.update(jumped, jump=True))
    np.testing.assert_allclose(odometry[-1], odometry[-2])
    np.testing.assert_allclose(split.T_map_odom @ odometry[-1], jumped, atol=1e-12)
    # Then motion continues in both frames: odometry moves by the same step, map -> odom stays.
    T_map_odom = split.T_map_odom.copy()
    odometry.append(split.update(jumped @ step, jump=False))
    np.testing.assert_allclose(invert_pose(odometry[-2]) @ odometry[-1], step, atol=1e-12)
    np.testing.assert_allclose(split.T_map_odom, T_map_odom)
    steps = [np.linalg.norm((invert_pose(a) @ b)[:3, 3]) for a, b in itertools.pairwise(odometry)]
    assert max(steps) <= 0.1 + 1e-9  # no jump in odom -> base_link
    split.reset()
    np.testing.assert_allclose(split.update(POSE, jump=True), POSE)  # after a reset odom starts on the map again
