"""Camera models: pinhole intrinsics, the rectified stereo rig (projection, triangulation, Jacobians) and the
change between optical and body axes.

Camera frames follow the optical convention (x right, y down, z forward); the right camera of a rectified rig sits at
``+baseline`` (metres) along x of the left camera, so its projection matrix has ``P[0, 3] = -fx * baseline``
(REP-104, image_pipeline, KITTI ``calib.txt`` and ``cv2.stereoRectify`` all write it so). Body axes follow REP-103
(x forward, y left, z up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# REP-103 body axes (x forward, y left, z up) from camera optical axes (z forward, x right, y down).
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def optical_to_body_pose(T_optical: np.ndarray) -> np.ndarray:
    """A 4x4 pose whose frames both have optical axes (e.g. a camera pose in the first camera's frame) re-expressed
    with body axes on both sides, so a camera looking forward moves like a robot body."""
    S = np.eye(4)
    S[:3, :3] = R_BODY_OPTICAL
    return S @ T_optical @ S.T


def optical_to_body_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) points given in optical axes -> the same points in body axes."""
    return np.asarray(points, np.float64).reshape(-1, 3) @ R_BODY_OPTICAL.T


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Pinhole K with square pixels, the given horizontal field of view and the principal point at the centre."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class StereoCamera:
    """A rectified stereo pair: shared pinhole intrinsics, right camera at +baseline (metres) along x."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.baseline <= 0:
            raise ValueError(f"stereo baseline must be positive (metres), got {self.baseline}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_intrinsics(cls, K: np.ndarray, baseline: float, width: int, height: int) -> StereoCamera:
        """The rig of two cameras with the pinhole matrix ``K`` (3x3), ``baseline`` metres apart."""
        K = np.asarray(K, np.float64)
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), float(baseline), width, height)

    @classmethod
    def from_projections(cls, P_left: np.ndarray, P_right: np.ndarray, width: int, height: int) -> StereoCamera:
        """The rig from the rectified 3x4 projection matrices of the left and right camera (12 numbers each)."""
        P_left = np.asarray(P_left, np.float64).reshape(3, 4)
        P_right = np.asarray(P_right, np.float64).reshape(3, 4)
        if P_left[0, 0] <= 0:
            raise ValueError(
                f"left projection matrix P has fx = {P_left[0, 0]}: it must be set (> 0), the images must be rectified"
            )
        if P_right[0, 3] >= 0:
            raise ValueError(
                f"right projection matrix P[0,3] = {P_right[0, 3]}: it must be -fx * baseline (< 0) for a rectified "
                "right camera"
            )
        return cls.from_intrinsics(P_left[:, :3], -P_right[0, 3] / P_right[0, 0], width, height)

    @classmethod
    def from_camera_infos(cls, left: Any, right: Any) -> StereoCamera:
        """The rig from the left and right sensor_msgs/CameraInfo (their P matrices and image size)."""
        if (left.width, left.height) != (right.width, right.height):
            raise ValueError(
                f"left and right camera_info sizes differ: {left.width}x{left.height} vs {right.width}x{right.height}"
            )
        return cls.from_projections(left.p, right.p, int(left.width), int(left.height))

    @property
    def K(self) -> np.ndarray:  # noqa: N802 (the conventional name of the intrinsic matrix)
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def bf(self) -> float:
        """Baseline times focal length: disparity = bf / depth."""
        return self.baseline * self.fx

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(N, 3) points in the left camera frame -> (N, 3) stereo measurements (uL, v, uR)."""
        x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
        inv_z = 1.0 / z
        uL = self.fx * x * inv_z + self.cx
        return np.stack([uL, self.fy * y * inv_z + self.cy, uL - self.bf * inv_z], axis=1)

    def in_image(self, uv: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of (N, 2) pixels inside the image (pixel centres at integers)."""
        return (
            (uv[:, 0] >= -0.5 + margin)
            & (uv[:, 0] <= self.width - 0.5 - margin)
            & (uv[:, 1] >= -0.5 + margin)
            & (uv[:, 1] <= self.height - 0.5 - margin)
        )

    def triangulate(self, uL: np.ndarray, v: np.ndarray, uR: np.ndarray) -> np.ndarray:
        """Rectified stereo triangulation: (N,) left column, row and right column -> (N, 3) left-camera points.

        Depth is bf / disparity; non-positive disparities give ``inf`` depth (callers filter by a depth range).
        """
        disparity = np.asarray(uL, dtype=np.float64) - np.asarray(uR, dtype=np.float64)
        with np.errstate(divide="ignore"):
            z = np.where(disparity > 0, self.bf / np.where(disparity > 0, disparity, 1.0), np.inf)
        x = (np.asarray(uL) - self.cx) * z / self.fx
        y = (np.asarray(v) - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=1)

    def scaled(self, factor: float) -> StereoCamera:
        """The same rig for images resized by ``factor``."""
        return StereoCamera(
            self.fx * factor,
            self.fy * factor,
            (self.cx + 0.5) * factor - 0.5,
            (self.cy + 0.5) * factor - 0.5,
            self.baseline,
            round(self.width * factor),
            round(self.height * factor),
        )


def stereo_projection_jacobian(camera: StereoCamera, points_cam: np.ndarray) -> np.ndarray:
    """(N, 3, 3) Jacobians of (uL, v, uR) with respect to the camera-frame point."""
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    inv_z = 1.0 / z
    inv_z2 = inv_z * inv_z
    J = np.zeros((len(points_cam), 3, 3))
    J[:, 0, 0] = camera.fx * inv_z
    J[:, 0, 2] = -camera.fx * x * inv_z2
    J[:, 1, 1] = camera.fy * inv_z
    J[:, 1, 2] = -camera.fy * y * inv_z2
    J[:, 2, 0] = camera.fx * inv_z
    J[:, 2, 2] = -camera.fx * (x - camera.baseline) * inv_z2
    return J


def stereo_pose_jacobian(camera: StereoCamera, points_cam: np.ndarray) -> np.ndarray:
    """(6, 3, N) derivative of (uL, v, uR) with respect to a left twist on T_cam_world (closed form of
    ``stereo_projection_jacobian @ point_pose_jacobian``), twist component first: ``J.reshape(6, -1)`` is the
    transposed (3N, 6) Jacobian with the residuals ordered (all uL, all v, all uR). Every entry is one contiguous
    row written in place (``out=``), which keeps it cheap inside a Gauss-Newton loop."""
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    fx, fy = camera.fx, camera.fy
    J = np.zeros((6, 3, len(points_cam)))
    iz = 1.0 / z
    xz, yz = x * iz, y * iz
    xy = xz * yz
    np.multiply(iz, fx, out=J[0, 0])
    np.multiply(iz, fy, out=J[1, 1])
    np.multiply(xz * iz, -fx, out=J[2, 0])
    np.multiply(yz * iz, -fy, out=J[2, 1])
    np.multiply(xy, -fx, out=J[3, 0])
    np.multiply(yz * yz, -fy, out=J[3, 1])
    J[3, 1] -= fy
    np.multiply(xz * xz, fx, out=J[4, 0])
    J[4, 0] += fx
    np.multiply(xy, fy, out=J[4, 1])
    np.multiply(yz, -fx, out=J[5, 0])
    np.multiply(xz, fy, out=J[5, 1])
    # uR = uL - bf / z: the right row is the left row plus bf / z^2 times dz / d(twist) = (0, 0, 1, y, -x, 0).
    biz2 = camera.bf * iz * iz
    J[0, 2] = J[0, 0]
    np.add(J[2, 0], biz2, out=J[2, 2])
    np.add(J[3, 0], biz2 * y, out=J[3, 2])
    np.subtract(J[4, 0], biz2 * x, out=J[4, 2])
    J[5, 2] = J[5, 0]
    return J
