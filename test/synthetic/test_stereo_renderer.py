"""Stereo room renderer: disparity is f * baseline / depth, the camera loop is smooth and closes; the dataset folder
holds TUM / KITTI pose files and camera_info YAML, and is reused and deterministic."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import yaml

from dense_descriptors_ros.geometry.se3 import so3_log
from dense_descriptors_ros.geometry.trajectory import read_kitti_poses, read_tum_trajectory
from dense_descriptors_ros.synthetic.dataset_folders import load_stereo_dataset, write_stereo_dataset
from dense_descriptors_ros.synthetic.gl_rasterizer import renderer_available
from dense_descriptors_ros.synthetic.stereo_renderer import (
    StereoSceneConfig,
    camera_trajectory,
    loop_closure_pairs,
    render_stereo_sequence,
)

_AVAILABLE, _REASON = renderer_available()
pytestmark = pytest.mark.skipif(not _AVAILABLE, reason=f"headless OpenGL renderer unavailable: {_REASON}")

STEREO = {"width": 160, "height": 120, "blocks": 12, "texels_per_metre": 64, "progress": False}


@pytest.fixture(scope="module")
def stereo_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stereo")
    return folder, write_stereo_dataset(folder, seed=0, n_frames=10, **STEREO)


def test_stereo_disparity_is_f_times_baseline_over_depth(stereo_dataset):
    _, seq = stereo_dataset
    fx, b = seq.K[0, 0], seq.baseline
    errors, consistent = [], []
    for t in (0, 9):
        left, right = (cv2.cvtColor(im[t], cv2.COLOR_RGB2GRAY).astype(np.float32) for im in (seq.left, seq.right))
        corners = cv2.goodFeaturesToTrack(left.astype(np.uint8), 150, 0.01, 5).reshape(-1, 2)
        for x, y in np.rint(corners).astype(int):
            disparity = fx * b / seq.depth_left[t, y, x]
            if not (6 <= y < seq.height - 6 and x - disparity - 12 >= 6 and x < seq.width - 6):
                continue
            # Independent measurement: best normalised cross-correlation along the same row, sub-pixel parabola.
            patch = left[y - 5 : y + 6, x - 5 : x + 6]
            d0 = int(disparity) - 6
            strip = right[y - 5 : y + 6, x - d0 - 12 - 5 : x - d0 + 6]
            score = cv2.matchTemplate(strip, patch, cv2.TM_CCOEFF_NORMED)[0]
            k = int(score.argmax())
            if 0 < k < len(score) - 1:
                k = k + 0.5 * (score[k - 1] - score[k + 1]) / (score[k - 1] - 2 * score[k] + score[k + 1])
            errors.append(abs((d0 + 12 - k) - disparity))
            # The right camera's own depth at the matched pixel agrees (not occluded pixels).
            z_right = seq.depth_right[t, y, round(x - disparity)]
            consistent.append(abs(z_right - seq.depth_left[t, y, x]) < 0.02 * seq.depth_left[t, y, x])
    errors = np.array(errors)
    assert len(errors) > 60
    assert np.median(errors) < 0.25, f"median disparity error {np.median(errors):.3f} px"
    assert np.mean(errors < 0.5) > 0.8
    assert np.mean(consistent) > 0.9
    # Same rows: rectified pair, identical intrinsics, right camera at +baseline along x.
    P_right = np.array(seq.camera_info("right")["p"]).reshape(3, 4)
    assert P_right[0, 3] == pytest.approx(-fx * b)
    assert seq.camera_info("left")["p"][3] == 0


def test_stereo_pose_files_parse_in_tum_and_kitti_format(stereo_dataset):
    from evo.tools import file_interface

    folder, seq = stereo_dataset
    relative = seq.relative_poses()
    np.testing.assert_allclose(relative[0], np.eye(4), atol=1e-12)
    tum = read_tum_trajectory(folder / "poses_tum.txt")
    times = np.loadtxt(folder / "times.txt")
    kitti = read_kitti_poses(folder / "poses_kitti.txt", timestamps=times)
    for trajectory in (tum, kitti):
        np.testing.assert_allclose(trajectory.poses, relative, atol=1e-6)
        np.testing.assert_allclose(trajectory.timestamps, seq.timestamps, atol=1e-6)
    # evo's own readers accept the files too.
    assert file_interface.read_tum_trajectory_file(str(folder / "poses_tum.txt")).num_poses == len(seq)
    assert len(file_interface.read_kitti_poses_file(str(folder / "poses_kitti.txt")).poses_se3) == len(seq)
    calib = dict(line.split(":", 1) for line in (folder / "calib.txt").read_text().splitlines())
    np.testing.assert_allclose(np.array(calib["P1"].split(), float).reshape(3, 4), seq.projection("right"))
    info = yaml.safe_load((folder / "right.yaml").read_text())
    assert (info["image_width"], info["image_height"]) == (seq.width, seq.height)
    np.testing.assert_allclose(info["projection_matrix"]["data"], seq.camera_info("right")["p"])
    assert seq.path_length() == pytest.approx(np.linalg.norm(np.diff(seq.poses[:, :3, 3], axis=0), axis=1).sum())


def test_stereo_dataset_is_reused_and_deterministic(stereo_dataset):
    folder, seq = stereo_dataset
    stamp = (folder / "left" / "000000.png").stat().st_mtime_ns
    again = write_stereo_dataset(folder, seed=0, n_frames=10, **STEREO)
    assert (folder / "left" / "000000.png").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.right, seq.right)
    np.testing.assert_array_equal(again.depth_left, seq.depth_left)
    # The trajectory spreads the loop over n_frames, so only the first frame is shared with a shorter sequence.
    fresh = render_stereo_sequence(seed=0, n_frames=1, **STEREO)
    np.testing.assert_array_equal(fresh.left[0], seq.left[0])
    np.testing.assert_array_equal(fresh.depth_right[0], seq.depth_right[0])
    assert load_stereo_dataset(folder).baseline == seq.baseline


def test_stereo_trajectory_is_smooth_and_closes_a_loop():
    config = StereoSceneConfig(n_frames=240, loops=1.15)
    poses = camera_trajectory(config)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    turns = [np.degrees(np.linalg.norm(so3_log(a[:3, :3].T @ b[:3, :3]))) for a, b in itertools.pairwise(poses)]
    assert steps.max() < 0.1 and steps.min() > 0.05
    assert max(turns) < 5
    pairs = loop_closure_pairs(poses, np.arange(240) / config.fps)
    assert pairs and all(j - i > 150 for i, j in pairs)
    assert not loop_closure_pairs(camera_trajectory(StereoSceneConfig(n_frames=200, loops=0.9)), np.arange(200) / 10)
    # Optical axes: x right, y down (world z up), z along the direction of travel.
    forward, down = poses[:, :3, 2], poses[:, :3, 1]
    assert np.all(np.einsum("ij,ij->i", forward[:-1], np.diff(poses[:, :3, 3], axis=0)) > 0)
    assert np.all(down[:, 2] < -0.9)
