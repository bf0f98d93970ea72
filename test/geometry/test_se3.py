"""SO(3) / SE(3) exp and log, pose inversion and rotation angles."""

import numpy as np

from dense_descriptors_ros.geometry.se3 import (
    invert_pose,
    rotation_angle,
    se3_exp,
    se3_log,
    so3_exp,
    so3_log,
    transform_points,
)


def test_so3_and_se3_exp_log_round_trip():
    rng = np.random.default_rng(0)
    phis = rng.normal(size=(50, 3))
    phis *= (rng.uniform(0, np.pi - 1e-3, 50) / np.linalg.norm(phis, axis=1))[:, None]
    phis[0] = 0.0
    phis[1] = [1e-10, 0, 0]
    R = so3_exp(phis)
    assert np.allclose(np.swapaxes(R, 1, 2) @ R, np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.allclose(so3_log(R), phis, atol=1e-9)
    xi = np.concatenate([rng.normal(size=(50, 3)), phis], axis=1)
    T = se3_exp(xi)
    assert np.allclose(se3_log(T), xi, atol=1e-8)
    assert np.allclose(invert_pose(T) @ T, np.eye(4), atol=1e-12)


def test_so3_log_near_pi():
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    for angle in (np.pi - 1e-5, np.pi):
        phi = so3_log(so3_exp(axis * angle))
        assert np.allclose(so3_exp(phi), so3_exp(axis * angle), atol=1e-8)


def test_se3_exp_matches_matrix_exponential():
    from scipy.linalg import expm

    xi = np.array([0.3, -0.2, 0.5, 0.4, -0.1, 0.7])
    hat = np.zeros((4, 4))
    hat[:3, :3] = [[0, -xi[5], xi[4]], [xi[5], 0, -xi[3]], [-xi[4], xi[3], 0]]
    hat[:3, 3] = xi[:3]
    assert np.allclose(se3_exp(xi), expm(hat), atol=1e-12)


def test_rotation_angle_and_transform_points():
    angles = np.array([0.0, 0.3, 1.2, np.pi])
    rotations = so3_exp(angles[:, None] * np.array([0.0, 0.6, 0.8]))
    np.testing.assert_allclose(rotation_angle(rotations), angles, atol=1e-7)
    T = se3_exp(np.array([1.0, 2.0, 3.0, 0.0, 0.0, np.pi / 2]))  # a quarter turn about z, then a shift
    moved = transform_points(T, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(moved[1], T[:3, 3])
    np.testing.assert_allclose(moved[0] - moved[1], [0.0, 1.0, 0.0], atol=1e-12)
