"""The slam_node's message builders: Odometry, Path, TF, status and the tracked-features image."""

import json

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Path
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from dense_descriptors_ros.geometry.se3 import se3_exp
from dense_descriptors_ros.io.image_conversion import image_to_numpy
from dense_descriptors_ros.nodes.messages.odometry import append_to_path, odometry_message, odometry_transforms
from dense_descriptors_ros.nodes.messages.slam import status_message, tracked_features_image
from dense_descriptors_ros.slam.stereo_slam import SlamResult, TrackingState

STAMP = Time(sec=12, nanosec=500)
POSE = se3_exp(np.array([1.0, -2.0, 0.5, 0.1, 0.2, -0.3]))


def test_odometry_path_and_transforms():
    odom = odometry_message(POSE, STAMP, "odom", "base_link")
    assert (odom.header.stamp, odom.header.frame_id, odom.child_frame_id) == (STAMP, "odom", "base_link")
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], POSE[:3, 3])
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), POSE[:3, :3], atol=1e-12)

    path = Path()
    for _ in range(3):
        append_to_path(path, odom.pose.pose, STAMP, "map", max_length=2)
    assert len(path.poses) == 2 and path.header.frame_id == "map" and path.poses[-1].header.stamp == STAMP

    map_odom, odom_base = odometry_transforms(odom, "map")
    assert (map_odom.header.frame_id, map_odom.child_frame_id) == ("map", "odom")
    assert map_odom.transform.rotation.w == 1.0 and map_odom.transform.translation.x == 0.0
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
    status = json.loads(status_message(result, bad_input=3, dropped_frames=1).data)
    assert status == {
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
