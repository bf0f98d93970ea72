"""The rectified stereo camera: projection and triangulation, its constructors from K, projection matrices and
CameraInfo, the pinhole K of a field of view, and the optical -> REP-103 body axis change."""

from types import SimpleNamespace

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import (
    StereoCamera,
    intrinsics_from_fov,
    optical_to_body_points,
    optical_to_body_pose,
    stereo_pose_jacobian,
)
from dense_descriptors_ros.geometry.se3 import se3_exp, so3_exp, transform_points

CAMERA = StereoCamera(fx=300.0, fy=300.0, cx=159.5, cy=119.5, baseline=0.12, width=320, height=240)


def test_stereo_triangulation_inverts_projection():
    rng = np.random.default_rng(1)
    points = np.stack([rng.uniform(-2, 2, 100), rng.uniform(-1, 1, 100), rng.uniform(0.5, 20, 100)], axis=1)
    uL, v, uR = CAMERA.project(points).T
    assert np.allclose(CAMERA.triangulate(uL, v, uR), points, atol=1e-9)
    assert np.all(np.isinf(CAMERA.triangulate(np.array([10.0]), np.array([5.0]), np.array([12.0]))[:, 2]))


def test_stereo_pose_jacobian_matches_finite_differences():
    """(6, 3, N): d(uL, v, uR) / d(left twist on T_cam_world), against central differences of the projection."""
    rng = np.random.default_rng(2)
    points = np.stack([rng.uniform(-2, 2, 50), rng.uniform(-1, 1, 50), rng.uniform(0.5, 20, 50)], axis=1)
    T = se3_exp(np.array([0.1, -0.2, 0.3, 0.05, -0.1, 0.2]))
    J = stereo_pose_jacobian(CAMERA, transform_points(T, points))
    assert J.shape == (6, 3, 50)
    eps = 1e-6
    for i in range(6):
        step = np.zeros(6)
        step[i] = eps
        plus = CAMERA.project(transform_points(se3_exp(step) @ T, points))
        minus = CAMERA.project(transform_points(se3_exp(-step) @ T, points))
        np.testing.assert_allclose(J[i], ((plus - minus) / (2 * eps)).T, rtol=1e-6, atol=1e-5)


def test_camera_rejects_bad_intrinsics():
    with pytest.raises(ValueError, match="baseline"):
        StereoCamera(300, 300, 160, 120, 0.0, 320, 240)


def _projections(camera: StereoCamera) -> tuple[list[float], list[float]]:
    """Left and right P (row-major 3x4) as image_pipeline / KITTI write them: P_right[0, 3] = -fx * baseline."""
    left = np.zeros((3, 4))
    left[:, :3] = camera.K
    right = left.copy()
    right[0, 3] = -camera.fx * camera.baseline
    return left.ravel().tolist(), right.ravel().tolist()


def test_from_intrinsics_and_projections():
    assert StereoCamera.from_intrinsics(CAMERA.K, 0.12, 320, 240) == CAMERA
    p_left, p_right = _projections(CAMERA)
    camera = StereoCamera.from_projections(p_left, p_right, 320, 240)
    assert camera == CAMERA and isinstance(camera.fx, float)
    with pytest.raises(ValueError, match=r"P\[0,3\] = 0.0: it must be -fx \* baseline"):
        StereoCamera.from_projections(p_left, p_left, 320, 240)
    with pytest.raises(ValueError, match="must be rectified"):
        StereoCamera.from_projections([0.0] * 12, p_right, 320, 240)


def test_from_camera_infos():
    p_left, p_right = _projections(CAMERA)
    left = SimpleNamespace(p=p_left, width=320, height=240)
    right = SimpleNamespace(p=p_right, width=320, height=240)
    assert StereoCamera.from_camera_infos(left, right) == CAMERA
    with pytest.raises(ValueError, match="sizes differ: 320x240 vs 640x480"):
        StereoCamera.from_camera_infos(left, SimpleNamespace(p=p_right, width=640, height=480))


def test_intrinsics_from_fov():
    K = intrinsics_from_fov(640, 480, 90.0)
    np.testing.assert_allclose(K, [[320.0, 0.0, 319.5], [0.0, 320.0, 239.5], [0.0, 0.0, 1.0]])


def test_optical_to_body_axes():
    # A camera 1 m ahead along its optical axis (z), turned left: about optical -y (up), which is body +z.
    pose = np.eye(4)
    pose[:3, :3] = so3_exp(np.array([0.0, -0.3, 0.0]))
    pose[2, 3] = 1.0
    body = optical_to_body_pose(pose)
    np.testing.assert_allclose(body[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)  # forward is body x
    np.testing.assert_allclose(body[:3, :3], so3_exp(np.array([0.0, 0.0, 0.3])), atol=1e-12)
    # optical x right, y down, z forward -> body -y, -z, x
    points = optical_to_body_points(np.eye(3))
    np.testing.assert_allclose(points, [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
