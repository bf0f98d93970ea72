"""Poses -> nav_msgs/Odometry, PoseWithCovarianceStamped, nav_msgs/Path and the TF frames map -> odom -> base_link.

REP-105: ``odom -> base_link`` must be continuous, ``map -> odom`` takes the jumps. :class:`MapOdomSplit` keeps that
split: odom follows the SLAM pose frame to frame, and when the SLAM pose jumps (relocalisation, a loop correction)
the jump goes into map -> odom while odom -> base_link holds still for that frame. Covariances are 6x6 in ROS order
(x, y, z, rotation about x, y, z) in the axes of the message's header frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import Pose, PoseStamped, PoseWithCovarianceStamped, TransformStamped
from nav_msgs.msg import Odometry, Path
from scipy.spatial.transform import Rotation

from dense_descriptors_ros.geometry.se3 import invert_pose

# Variance published for a pose the SLAM does not track (lost: the motion model's prediction).
UNTRACKED_POSE_VARIANCE = 1e4


def rotate_pose_covariance(R: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """A (translation, rotation) 6x6 covariance re-expressed in axes rotated by R (v -> R v for both parts)."""
    B = np.zeros((6, 6))
    B[:3, :3] = B[3:, 3:] = R
    return B @ covariance @ B.T


def covariance_or_untracked(covariance: np.ndarray | None) -> np.ndarray:
    return UNTRACKED_POSE_VARIANCE * np.eye(6) if covariance is None else covariance


class MapOdomSplit:
    """Splits each map -> base_link pose into map -> odom and odom -> base_link (REP-105)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.T_map_odom = np.eye(4)
        self.T_odom_base: np.ndarray | None = None

    def update(self, T_map_base: np.ndarray, jump: bool) -> np.ndarray:
        """The new odom -> base_link; ``jump``: the SLAM pose moved by a correction rather than by motion."""
        if self.T_odom_base is None:  # the first pose: odom starts on the map
            self.T_odom_base = invert_pose(self.T_map_odom) @ T_map_base
        elif jump:  # the motion across a jump is unknown: odom -> base_link holds still, map -> odom moves
            self.T_map_odom = T_map_base @ invert_pose(self.T_odom_base)
        else:
            self.T_odom_base = invert_pose(self.T_map_odom) @ T_map_base
        return self.T_odom_base.copy()


def pose_message(T: np.ndarray) -> Pose:
    """A 4x4 rigid transform as geometry_msgs/Pose."""
    pose = Pose()
    qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    o = pose.orientation
    o.x, o.y, o.z, o.w = float(qx), float(qy), float(qz), float(qw)
    return pose


def odometry_message(
    T_odom_base: np.ndarray, stamp: Any, odom_frame: str, base_frame: str, covariance: np.ndarray | None = None
) -> Odometry:
    """Odometry of ``base_frame`` in ``odom_frame`` with a 6x6 pose covariance (None: zeros); no twist."""
    odom = Odometry()
    odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, odom_frame, base_frame
    odom.pose.pose = pose_message(T_odom_base)
    if covariance is not None:
        odom.pose.covariance = [float(v) for v in np.asarray(covariance).ravel()]
    return odom


def pose_with_covariance_message(
    T_map_base: np.ndarray, covariance: np.ndarray, stamp: Any, map_frame: str
) -> PoseWithCovarianceStamped:
    msg = PoseWithCovarianceStamped()
    msg.header.stamp, msg.header.frame_id = stamp, map_frame
    msg.pose.pose = pose_message(T_map_base)
    msg.pose.covariance = [float(v) for v in np.asarray(covariance).ravel()]
    return msg


def append_to_path(path: Path, pose: Pose, stamp: Any, frame_id: str, max_length: int) -> None:
    """Add a pose at ``stamp`` to ``path`` (in ``frame_id``), keeping its newest ``max_length`` poses."""
    stamped = PoseStamped()
    stamped.header.stamp, stamped.header.frame_id = stamp, frame_id
    stamped.pose = pose
    path.header.stamp, path.header.frame_id = stamp, frame_id
    path.poses.append(stamped)
    del path.poses[:-max_length]


def _transform(T: np.ndarray, stamp: Any, parent: str, child: str) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, parent, child
    pose = pose_message(T)
    t = msg.transform.translation
    t.x, t.y, t.z = pose.position.x, pose.position.y, pose.position.z
    msg.transform.rotation = pose.orientation
    return msg


def odometry_transforms(odom: Odometry, map_frame: str, T_map_odom: np.ndarray) -> list[TransformStamped]:
    """TF of map -> odom and odom -> base (the odometry's pose), at the odometry's stamp."""
    body = _transform(np.eye(4), odom.header.stamp, odom.header.frame_id, odom.child_frame_id)
    p = odom.pose.pose.position
    body.transform.translation.x, body.transform.translation.y, body.transform.translation.z = p.x, p.y, p.z
    body.transform.rotation = odom.pose.pose.orientation
    return [_transform(T_map_odom, odom.header.stamp, map_frame, odom.header.frame_id), body]
