"""SO(3) / SE(3) algebra and rigid-pose helpers (numpy, vectorised over leading axes).

Conventions: poses are 4x4 float64 matrices. ``T_a_b`` maps points from frame b into frame a, so the camera pose
published by the SLAM is ``T_world_cam`` and the optimisers work on ``T_cam_world``. Twists are 6-vectors
``(rho, phi)`` (translation part first) and updates are applied on the left: ``T <- exp(delta) @ T``.
"""

from __future__ import annotations

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


def se3_adjoint(T: np.ndarray) -> np.ndarray:
    """6x6 adjoint of a rigid transform for (rho, phi) twists: T exp(xi) T^-1 = exp(Ad(T) xi)."""
    R, t = T[:3, :3], T[:3, 3]
    Ad = np.zeros((6, 6))
    Ad[:3, :3] = Ad[3:, 3:] = R
    Ad[:3, 3:] = skew(t) @ R
    return Ad


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply one 4x4 transform to (N, 3) points."""
    return points @ T[:3, :3].T + T[:3, 3]


def rotation_angle(rotations: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of (..., 3, 3) rotation matrices, from the trace."""
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def point_pose_jacobian(points_cam: np.ndarray) -> np.ndarray:
    """(N, 3, 6) derivative of a camera-frame point with respect to a left twist on T_cam_world: [I, -[p]x]."""
    J = np.zeros((len(points_cam), 3, 6))
    J[:, :, :3] = np.eye(3)
    J[:, :, 3:] = -skew(points_cam)
    return J
