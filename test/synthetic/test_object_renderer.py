"""Object scene renderer: projection, depth and correspondences are exact; occlusion and leaving the view are
flagged; sequences and dataset folders are deterministic from the seed."""

from __future__ import annotations

import shutil
import threading

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import intrinsics_from_fov
from dense_descriptors_ros.synthetic.dataset_folders import load_object_dataset, write_object_dataset
from dense_descriptors_ros.synthetic.gl_rasterizer import Lighting, renderer_available
from dense_descriptors_ros.synthetic.object_renderer import (
    correspondences,
    dense_correspondences,
    point_tracks,
    render_object_sequence,
    render_poses,
)
from dense_descriptors_ros.synthetic.render_assets import ObjectModel, make_object, pose_matrix, quad_mesh
from dense_descriptors_ros.synthetic.textures import checker_texture

_AVAILABLE, _REASON = renderer_available()
pytestmark = pytest.mark.skipif(not _AVAILABLE, reason=f"headless OpenGL renderer unavailable: {_REASON}")

W, H = 320, 240
K = intrinsics_from_fov(W, H, 60.0)
SQUARES, SQUARE_PX, BORDER = 8, 32, 1  # checker squares, texels per square, white border squares
HALF = 0.09  # the plane spans [-HALF, HALF]^2 metres


def checker_plane() -> ObjectModel:
    """A square plane with a checkerboard and a white border; texel (c, r) is at object (x, y) below."""
    board = checker_texture(SQUARES, SQUARE_PX, colours=((20, 20, 20), (235, 235, 235)))
    pad = BORDER * SQUARE_PX
    texture = cv2.copyMakeBorder(board, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(235, 235, 235))
    mesh = quad_mesh([-HALF, -HALF, 0.0], [2 * HALF, 0.0, 0.0], [0.0, 2 * HALF, 0.0])
    return ObjectModel("checker", mesh, texture, "strong", specular=0.0)


def inner_corners_object() -> np.ndarray:
    """(49, 3) object coordinates of the inner checker corners, row by row."""
    n_texels = (SQUARES + 2 * BORDER) * SQUARE_PX
    k = (BORDER + np.arange(1, SQUARES)) * SQUARE_PX / n_texels  # texture coordinate of each inner corner line
    ys, xs = np.meshgrid(-HALF + 2 * HALF * k, -HALF + 2 * HALF * k, indexing="ij")
    return np.column_stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)])


def project(T_cam_obj: np.ndarray, points: np.ndarray) -> np.ndarray:
    cam = points @ T_cam_obj[:3, :3].T + T_cam_obj[:3, 3]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def detect_corners(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found, corners = cv2.findChessboardCornersSB(gray, (SQUARES - 1, SQUARES - 1), flags=cv2.CALIB_CB_ACCURACY)
    assert found, "checkerboard not found in the rendered image"
    return corners.reshape(-1, 2).astype(np.float64)


def match_order(detected: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Detected corners reordered to the predicted ones (the detector's start corner is arbitrary)."""
    distance = np.linalg.norm(detected[None] - predicted[:, None], axis=2)
    return detected[distance.argmin(1)]


POSE_A = pose_matrix((15, -20, 5), (0.01, -0.005, 0.33))
POSE_B = pose_matrix((-25, 30, -35), (-0.02, 0.015, 0.38))
GREY = np.full((H, W, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def checker_pair():
    poses = np.stack([POSE_A, POSE_B])[:, None]
    return render_poses([checker_plane()], poses, K, W, H, background=GREY)


def test_projection_matches_intrinsics_and_pose(checker_pair):
    for t, pose in enumerate((POSE_A, POSE_B)):
        predicted = project(pose, inner_corners_object())
        detected = match_order(detect_corners(checker_pair.rgb[t]), predicted)
        error = np.linalg.norm(detected - predicted, axis=1)
        assert error.max() < 0.5, f"frame {t}: corner error up to {error.max():.3f} px"
        assert error.mean() < 0.2


def test_depth_is_metric_camera_z(checker_pair):
    # Ray-plane intersection for every object pixel, computed independently of the renderer.
    ys, xs = np.nonzero(checker_pair.masks[0])
    rays = np.column_stack([xs, ys, np.ones(len(xs))]) @ np.linalg.inv(K).T
    normal, point = POSE_A[:3, 2], POSE_A[:3, 3]
    z = (normal @ point) / (rays @ normal)
    np.testing.assert_allclose(checker_pair.depth[0][ys, xs], z, rtol=1e-4)
    assert (checker_pair.depth[0][~checker_pair.masks[0]] == 0).all()


def test_correspondences_land_on_the_same_texture_feature(checker_pair):
    predicted_a = project(POSE_A, inner_corners_object())
    corners_a = match_order(detect_corners(checker_pair.rgb[0]), predicted_a)
    corners_b = match_order(detect_corners(checker_pair.rgb[1]), project(POSE_B, inner_corners_object()))
    pts_b, visible = correspondences(checker_pair, 0, 1, corners_a)
    assert visible.all()
    error = np.linalg.norm(pts_b - corners_b, axis=1)
    assert error.max() < 0.5, f"transferred corners off by up to {error.max():.3f} px"
    # Transfer of the exact projections is exact up to float32 depth: independent of any detector.
    pts_b, _ = correspondences(checker_pair, 0, 1, predicted_a)
    assert np.abs(pts_b - project(POSE_B, inner_corners_object())).max() < 0.02


def test_dense_flow_agrees_with_point_correspondences(checker_pair):
    flow, valid = dense_correspondences(checker_pair, 0, 1)
    assert flow.shape == (H, W, 2) and valid.shape == (H, W)
    ys, xs = np.nonzero(checker_pair.masks[0] & valid)
    pts = np.column_stack([xs, ys]).astype(np.float64)
    pts_b, visible = correspondences(checker_pair, 0, 1, pts)
    assert visible.all()
    np.testing.assert_allclose(pts + flow[ys, xs], pts_b, atol=1e-3)
    # Object pixels of frame 0 mostly stay visible; the grey background is static and visible where uncovered.
    assert valid[checker_pair.masks[0]].mean() > 0.95
    assert np.abs(flow[~checker_pair.masks[0]]).max() == 0


def test_occluded_points_are_flagged():
    board = make_object("occluder", 0)
    plane_pose = pose_matrix((0, 0, 0), (0.0, 0.0, 0.4))
    hidden = pose_matrix((0, 0, 0), (0.0, 0.0, -5.0))  # behind the camera: not drawn
    covering = pose_matrix((0, 0, 0), (0.04, 0.0, 0.25))  # the board over part of the plane, in front of it
    poses = np.array([[plane_pose, hidden], [plane_pose, covering]])
    seq = render_poses([checker_plane(), board], poses, K, W, H, background=GREY)
    corners = project(plane_pose, inner_corners_object())
    pts_1, visible = correspondences(seq, 0, 1, corners)
    np.testing.assert_allclose(pts_1, corners, atol=0.02)  # the plane did not move
    under_board = seq.instance_ids[1][np.rint(corners[:, 1]).astype(int), np.rint(corners[:, 0]).astype(int)] == 2
    assert 0 < under_board.sum() < len(corners)
    np.testing.assert_array_equal(visible, ~under_board)
    # Occluder pixels in frame 1 are nearer than the plane behind them.
    board_pixels = seq.instance_ids[1] == 2
    assert np.all(seq.depth[1][board_pixels] < 0.4)
    # Back in frame 0 the board is gone: its points have no correspondence that is visible.
    ys, xs = np.nonzero(board_pixels)
    _, visible_back = correspondences(seq, 1, 0, np.column_stack([xs, ys])[::50])
    assert not visible_back.any()


def test_points_leaving_the_view_or_turning_away_are_flagged():
    box = make_object("box", 0)
    centre = pose_matrix((10, 20, 0), (0.0, 0.0, 0.45))
    shifted = pose_matrix((10, 20, 0), (0.25, 0.0, 0.45))  # mostly out of the right border
    turned = centre @ pose_matrix((0, 180, 0))  # the faces seen first now face away
    seq = render_poses([box], np.array([[centre], [shifted], [turned]]), K, W, H)
    ys, xs = np.nonzero(seq.masks[0])
    pts = np.column_stack([xs, ys]).astype(np.float64)
    pts_1, visible_1 = correspondences(seq, 0, 1, pts)
    outside = pts_1[:, 0] >= W - 0.5
    assert outside.any() and (~outside).any()
    assert not visible_1[outside].any()
    assert visible_1[~outside].mean() > 0.9
    _, visible_2 = correspondences(seq, 0, 2, pts)
    assert visible_2.mean() < 0.02
    # Points outside frame i have no correspondence.
    pts_out, vis_out = correspondences(seq, 0, 1, np.array([[-5.0, 10.0], [W + 3.0, 10.0]]))
    assert np.isnan(pts_out).all() and not vis_out.any()


def test_bad_input_is_rejected(checker_pair):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        correspondences(checker_pair, 0, 1, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="outside the sequence"):
        correspondences(checker_pair, 0, 5, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="object"):
        render_object_sequence(object="teapot", n_frames=1)
    with pytest.raises(ValueError, match="poses must be"):
        render_poses([checker_plane()], np.zeros((2, 2, 4, 4)), K, W, H)


SMALL = {"width": 128, "height": 96, "n_frames": 8, "supersample": 1, "progress": False}


def test_sequences_are_deterministic_from_the_seed():
    a = render_object_sequence(seed=3, object="hulk", occlusion_passes=0, **SMALL)
    b = render_object_sequence(seed=3, object="hulk", occlusion_passes=0, **SMALL)
    c = render_object_sequence(seed=4, object="hulk", occlusion_passes=0, **SMALL)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.poses, b.poses)
    assert not np.array_equal(a.poses, c.poses)
    assert a.masks.any(axis=(1, 2)).all()
    # Only the background changes with the background option: the benchmark pairs frames across backgrounds.
    d = render_object_sequence(seed=3, object="hulk", occlusion_passes=0, background="stripes", **SMALL)
    np.testing.assert_array_equal(d.poses, a.poses)
    np.testing.assert_array_equal(d.depth, a.depth)
    np.testing.assert_array_equal(d.rgb[d.masks], a.rgb[a.masks])
    assert not np.array_equal(d.background, a.background)


def test_rendered_sequence_ground_truth_is_consistent():
    """On a generated sequence: the object moves, photometric consistency holds along correspondences, and the
    occluder hides the object completely for some frames."""
    seq = render_object_sequence(
        seed=1,
        object="hulk",
        n_frames=60,
        width=160,
        height=120,
        occlusion_passes=1,
        occlusion_frames=30,
        lighting_change=0.0,
        progress=False,
    )
    assert (seq.instance_ids == 2).any(axis=(1, 2)).sum() >= 10
    fully_hidden = ~seq.masks.any(axis=(1, 2))
    assert fully_hidden.any(), "the occluder never hides the whole object"
    rotation = np.degrees(np.arccos((np.trace(seq.object_poses[0, :3, :3].T @ seq.object_poses[10, :3, :3]) - 1) / 2))
    assert rotation > 15
    ys, xs = np.nonzero(seq.masks[0])
    pts = np.column_stack([xs, ys]).astype(np.float64)
    pts_1, visible = correspondences(seq, 0, 1, pts)
    assert visible.mean() > 0.8
    # Colour at the true match agrees (bilinear sample; lighting fixed, shading changes a little with rotation).
    map_xy = pts_1[visible].astype(np.float32)
    colours_1 = cv2.remap(seq.rgb[1], map_xy[:, 0:1], map_xy[:, 1:2], cv2.INTER_LINEAR)[:, 0].astype(float)
    colours_0 = seq.rgb[0][ys[visible], xs[visible]].astype(float)
    assert np.median(np.abs(colours_1 - colours_0)) < 12
    # A wrong match (shifted by 3 px) is clearly worse: the texture is strong.
    colours_wrong = cv2.remap(seq.rgb[1], map_xy[:, 0:1] + 3, map_xy[:, 1:2], cv2.INTER_LINEAR)[:, 0].astype(float)
    assert np.median(np.abs(colours_wrong - colours_0)) > 1.5 * np.median(np.abs(colours_1 - colours_0))
    tracks, track_visible = point_tracks(seq, pts[::40], ref=0)
    assert tracks.shape == (60, len(pts[::40]), 2)
    assert not track_visible[fully_hidden].any()
    assert track_visible[0].all()


def test_dataset_folder_is_written_once_and_reloaded(tmp_path):
    folder = tmp_path / "objects"
    options = {k: v for k, v in SMALL.items() if k != "n_frames"}
    first = write_object_dataset(folder, seed=2, n_frames=4, object="drill", **options)
    png = folder / "rgb" / "000000.png"
    stamp = png.stat().st_mtime_ns
    again = write_object_dataset(folder, seed=2, n_frames=4, object="drill", **options)
    assert png.stat().st_mtime_ns == stamp  # reused, not rendered again
    loaded = load_object_dataset(folder)
    for seq in (again, loaded):
        np.testing.assert_array_equal(seq.rgb, first.rgb)
        np.testing.assert_array_equal(seq.depth, first.depth)
        np.testing.assert_array_equal(seq.instance_ids, first.instance_ids)
        np.testing.assert_array_equal(seq.poses, first.poses)
        assert seq.config == first.config
    # Object masks for `dense-descriptors train --masks`; written again if a reused folder lacks them.
    masks = [cv2.imread(str(folder / "mask" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED) for t in range(4)]
    np.testing.assert_array_equal(np.stack(masks) > 0, first.masks)
    shutil.rmtree(folder / "mask")
    write_object_dataset(folder, seed=2, n_frames=4, object="drill", **options)
    assert png.stat().st_mtime_ns == stamp and len(list((folder / "mask").glob("*.png"))) == 4
    other = write_object_dataset(folder, seed=5, n_frames=3, object="drill", **options)
    assert len(load_object_dataset(folder)) == 3 and not np.array_equal(other.poses[0], first.poses[0])
    assert len(list((folder / "mask").glob("*.png"))) == 3
    with pytest.raises(FileNotFoundError, match="no rendered object dataset"):
        load_object_dataset(tmp_path / "missing")


def test_lighting_changes_the_image_but_not_the_geometry():
    models = [make_object("sphere", 0)]
    poses = np.array([[pose_matrix((0, 0, 0), (0, 0, 0.4))]] * 2)
    dim = Lighting((0.0, 0.0, -1.0), (0.6, 0.6, 0.6), 0.3)
    lights = np.array([[0.0, 0.0, -1.0, 1.0, 1.0, 1.0, 0.4], [*dim.direction, *dim.colour, dim.ambient]])
    seq = render_poses(models, poses, K, W, H, lights=lights)
    np.testing.assert_array_equal(seq.depth[0], seq.depth[1])
    mask = seq.masks[0]
    assert seq.rgb[1][mask].mean() < 0.75 * seq.rgb[0][mask].mean()


def test_rendering_works_from_a_worker_thread():
    """Each thread gets its own GL context (node workers and test harnesses render off the main thread)."""
    options = {"width": 64, "height": 48, "n_frames": 2, "progress": False}
    main = render_object_sequence(**options)
    results = {}
    worker = threading.Thread(target=lambda: results.update(seq=render_object_sequence(**options)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(results["seq"].rgb, main.rgb)
