"""SE(3) algebra, the rectified stereo camera model and stereo triangulation (numpy, vectorised).

Conventions: poses are 4x4 float64 matrices. ``T_a_b`` maps points from frame b into frame a, so the camera pose
published by the SLAM is ``T_world_cam`` and the optimisers work on ``T_cam_world``. Twists are 6-vectors
``(rho, phi)`` (translation part first) and updates are applied on the left: ``T <- exp(delta) @ T``.
Camera frames follow the optical convention (x right, y down, z forward); the right camera of the rectified rig
sits at ``+baseline`` along x of the left camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SMALL_ANGLE = 1e-8


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def so3_exp(phi: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) rotation vectors -> (..., 3, 3) rotation matrices."""
    phi = np.asarray(phi, dtype=np.float64)
    theta = np.linalg.norm(phi, axis=-1)[..., None, None]
    K = skew(phi)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * K + b * (K @ K)


def so3_log(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) rotation vectors (angle in [0, pi])."""
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    sin = np.sin(theta)
    small = theta < 1e-6
    scale = np.where(small, 0.5 + theta**2 / 12.0, theta / (2.0 * np.where(small, 1.0, sin)))
    phi = w * scale[..., None]
    # Near pi the antisymmetric part vanishes: read the axis from the symmetric part instead.
    near_pi = theta > np.pi - 1e-3
    if np.any(near_pi):
        Rp = R[near_pi]
        B = (Rp + np.swapaxes(Rp, -1, -2)) / 2.0 - np.eye(3) * cos[near_pi][:, None, None]
        col = np.argmax(np.diagonal(B, axis1=-2, axis2=-1), axis=-1)
        axis = B[np.arange(len(Rp)), :, col]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        sign = np.sign(np.sum(axis * w[near_pi], axis=-1))
        sign[sign == 0] = 1.0
        phi[near_pi] = axis * (sign * theta[near_pi])[:, None]
    return phi


def _left_jacobian(phi: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(phi, axis=-1)[..., None, None]
    K = skew(phi)
    small = theta < 1e-6
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    b = np.where(small, 1.0 / 6.0, (safe - np.sin(safe)) / safe**3)
    return np.eye(3) + a * K + b * (K @ K)


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """(..., 6) twists (rho, phi) -> (..., 4, 4) rigid transforms."""
    xi = np.asarray(xi, dtype=np.float64)
    rho, phi = xi[..., :3], xi[..., 3:]
    T = np.zeros((*xi.shape[:-1], 4, 4))
    T[..., :3, :3] = so3_exp(phi)
    T[..., :3, 3] = (_left_jacobian(phi) @ rho[..., None])[..., 0]
    T[..., 3, 3] = 1.0
    return T


def se3_log(T: np.ndarray) -> np.ndarray:
    """(..., 4, 4) rigid transforms -> (..., 6) twists (rho, phi); inverse of :func:`se3_exp`."""
    T = np.asarray(T, dtype=np.float64)
    phi = so3_log(T[..., :3, :3])
    rho = np.linalg.solve(_left_jacobian(phi), T[..., :3, 3][..., None])[..., 0]
    return np.concatenate([rho, phi], axis=-1)


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) rigid transforms without a general matrix inverse."""
    T = np.asarray(T, dtype=np.float64)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3][..., None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply one 4x4 transform to (N, 3) points."""
    return points @ T[:3, :3].T + T[:3, 3]


def rotation_angle_deg(T: np.ndarray) -> float:
    """Rotation angle of a 4x4 transform in degrees."""
    return float(np.degrees(np.linalg.norm(so3_log(T[:3, :3]))))


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


def point_pose_jacobian(points_cam: np.ndarray) -> np.ndarray:
    """(N, 3, 6) derivative of a camera-frame point with respect to a left twist on T_cam_world: [I, -[p]x]."""
    J = np.zeros((len(points_cam), 3, 6))
    J[:, :, :3] = np.eye(3)
    J[:, :, 3:] = -skew(points_cam)
    return J


def stereo_pose_jacobian(camera: StereoCamera, points_cam: np.ndarray) -> np.ndarray:
    """(N, 3, 6) derivative of (uL, v, uR) with respect to a left twist on T_cam_world (closed form of
    ``stereo_projection_jacobian @ point_pose_jacobian``)."""
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    iz = 1.0 / z
    iz2 = iz * iz
    fx, fy, b = camera.fx, camera.fy, camera.baseline
    xr = x - b
    J = np.empty((len(points_cam), 3, 6))
    J[:, 0, 0] = fx * iz
    J[:, 0, 1] = 0.0
    J[:, 0, 2] = -fx * x * iz2
    J[:, 0, 3] = -fx * x * y * iz2
    J[:, 0, 4] = fx + fx * x * x * iz2
    J[:, 0, 5] = -fx * y * iz
    J[:, 1, 0] = 0.0
    J[:, 1, 1] = fy * iz
    J[:, 1, 2] = -fy * y * iz2
    J[:, 1, 3] = -fy - fy * y * y * iz2
    J[:, 1, 4] = fy * x * y * iz2
    J[:, 1, 5] = fy * x * iz
    J[:, 2, 0] = fx * iz
    J[:, 2, 1] = 0.0
    J[:, 2, 2] = -fx * xr * iz2
    J[:, 2, 3] = -fx * xr * y * iz2
    J[:, 2, 4] = fx + fx * xr * x * iz2
    J[:, 2, 5] = -fx * y * iz
    return J
