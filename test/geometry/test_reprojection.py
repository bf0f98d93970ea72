"""Reprojection of depth pixels into another view: the exact shift of a sideways move, occlusion, unknown depth."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptors_ros.geometry.reprojection import reproject_pixels

K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])  # 64x48 depth images


def _moved_sideways(tx: float) -> np.ndarray:
    """Camera-b-from-camera-a of a camera moved by tx metres along x."""
    T = np.eye(4)
    T[0, 3] = -tx
    return T


def test_a_sideways_move_over_a_plane_shifts_every_pixel_by_f_t_over_z() -> None:
    depth = np.full((48, 64), 2.0)
    ys, xs = np.mgrid[0:48, 0:64]
    points = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    points_b, seen = reproject_pixels(points, depth, depth, K, _moved_sideways(0.1))
    # 100 px * 0.1 m / 2 m = 5 px to the left; the 5 leftmost columns leave the image.
    expected_seen = points[:, 0] - 5 >= -0.5
    np.testing.assert_array_equal(seen, expected_seen)
    np.testing.assert_allclose(points_b[seen] - points[seen], [[-5.0, 0.0]] * int(seen.sum()), atol=1e-9)
    assert np.isnan(points_b[~seen]).all()


def test_hidden_points_unknown_depth_and_unusable_pixels_are_not_labels() -> None:
    depth_a = np.full((48, 64), 2.0)
    depth_a[0:5, :] = 0.0  # unknown depth
    depth_b = depth_a.copy()
    depth_b[:, 40:50] = 1.0  # something in front of the plane in view b
    usable = np.ones((48, 64), bool)
    usable[:, 0:10] = False  # e.g. not the object
    ys, xs = np.mgrid[0:48, 0:64]
    points = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    _, seen = reproject_pixels(points, depth_a, depth_b, K, np.eye(4), usable, usable)
    seen = seen.reshape(48, 64)
    assert not seen[0:5].any() and not seen[:, 40:50].any() and not seen[:, 0:10].any()
    assert seen[5:, 10:40].all() and seen[5:, 50:].all()
    with pytest.raises(ValueError, match="alike"):
        reproject_pixels(points, depth_a, depth_b[:10], K, np.eye(4))
