"""Constant-velocity motion model: the pose prediction that starts the tracking of each frame."""

from __future__ import annotations

import numpy as np

from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp, se3_log


class ConstantVelocityModel:
    """Predicts the next camera pose from the last inter-frame motion, scaled by the time step."""

    def __init__(self) -> None:
        self.velocity: np.ndarray | None = None  # twist per second of T_world_cam (right-multiplied motion)
        self.last_pose: np.ndarray | None = None
        self.last_stamp: float | None = None

    def predict(self, stamp: float) -> np.ndarray | None:
        """Predicted T_world_cam at ``stamp`` (None before the first update)."""
        if self.last_pose is None:
            return None
        if self.velocity is None or self.last_stamp is None:
            return self.last_pose.copy()
        dt = stamp - self.last_stamp
        return self.last_pose @ se3_exp(self.velocity * dt)

    def update(self, stamp: float, T_world_cam: np.ndarray) -> None:
        if self.last_pose is not None and self.last_stamp is not None and stamp > self.last_stamp:
            delta = invert_pose(self.last_pose) @ T_world_cam
            self.velocity = se3_log(delta) / (stamp - self.last_stamp)
        self.last_pose, self.last_stamp = T_world_cam.copy(), stamp

    def reset(self, keep_pose: bool = False) -> None:
        self.velocity = None
        if not keep_pose:
            self.last_pose, self.last_stamp = None, None

    def apply_correction(self, T_correction: np.ndarray) -> None:
        """Move the model into a corrected world frame (loop closure): pose <- correction @ pose."""
        if self.last_pose is not None:
            self.last_pose = T_correction @ self.last_pose
