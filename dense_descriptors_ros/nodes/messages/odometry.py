"""Poses -> nav_msgs/Odometry, nav_msgs/Path and the TF frames map -> odom -> base_link (REP-105).

map -> odom is the identity: the SLAM's poses are already globally corrected (loop closure), so odom carries them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import Pose, PoseStamped, TransformStamped
from nav_msgs.msg import Odometry, Path
from scipy.spatial.transform import Rotation


def pose_message(T: np.ndarray) -> Pose:
    """A 4x4 rigid transform as geometry_msgs/Pose."""
    pose = Pose()
    qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    o = pose.orientation
    o.x, o.y, o.z, o.w = float(qx), float(qy), float(qz), float(qw)
    return pose


def odometry_message(T_odom_base: np.ndarray, stamp: Any, odom_frame: str, base_frame: str) -> Odometry:
    """Odometry of ``base_frame`` in ``odom_frame`` (pose only)."""
    odom = Odometry()
    odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, odom_frame, base_frame
    odom.pose.pose = pose_message(T_odom_base)
    return odom


def append_to_path(path: Path, pose: Pose, stamp: Any, frame_id: str, max_length: int) -> None:
    """Add a pose at ``stamp`` to ``path`` (in ``frame_id``), keeping its newest ``max_length`` poses."""
    stamped = PoseStamped()
    stamped.header.stamp, stamped.header.frame_id = stamp, frame_id
    stamped.pose = pose
    path.header.stamp, path.header.frame_id = stamp, frame_id
    path.poses.append(stamped)
    del path.poses[:-max_length]


def odometry_transforms(odom: Odometry, map_frame: str) -> list[TransformStamped]:
    """TF of map -> odom (identity) and odom -> base (the odometry's pose), at the odometry's stamp."""
    identity = TransformStamped()
    identity.header.stamp, identity.header.frame_id = odom.header.stamp, map_frame
    identity.child_frame_id = odom.header.frame_id
    identity.transform.rotation.w = 1.0
    body = TransformStamped()
    body.header.stamp, body.header.frame_id = odom.header.stamp, odom.header.frame_id
    body.child_frame_id = odom.child_frame_id
    p = odom.pose.pose.position
    body.transform.translation.x, body.transform.translation.y, body.transform.translation.z = p.x, p.y, p.z
    body.transform.rotation = odom.pose.pose.orientation
    return [identity, body]
