"""Stereo matching along rows: learned-feature matches on a rendered box room lie at the true depth."""

import numpy as np
import pytest

from dense_descriptors_ros.slam.features import FeatureConfig, LearnedDenseFeatures
from dense_descriptors_ros.slam.stereo_matching import match_stereo_rows


@pytest.mark.parametrize("detector", ["gftt", "fast", "saliency"])
def test_learned_stereo_matches_have_correct_depth(first_frame, detector, box_room_camera):
    feats = LearnedDenseFeatures(FeatureConfig(detector=detector))
    left = feats.extract(first_frame.left, first_frame.left_desc)
    right = feats.extract(first_frame.right, first_frame.right_desc)
    assert left.descriptors.shape[1] == 16
    assert np.allclose(np.linalg.norm(left.descriptors, axis=1), 1.0, atol=1e-5)
    uR = match_stereo_rows(left, right, feats, box_room_camera)
    ok = np.isfinite(uR)
    assert ok.sum() > 100
    # every matched point lies on a wall of the 10 x 4 x 10 m room seen from the trajectory
    pc = box_room_camera.triangulate(left.keypoints[ok, 0], left.keypoints[ok, 1], uR[ok])
    pw = pc @ first_frame.T_world_cam[:3, :3].T + first_frame.T_world_cam[:3, 3]
    relative_gap = np.min(np.abs(np.abs(pw) - np.array([5.0, 2.0, 5.0])), axis=1) / pc[:, 2]
    tolerance = 0.1 if detector == "saliency" else 0.05  # saliency peaks are whole pixels, corners sub-pixel
    assert np.median(relative_gap) < tolerance / 3
    assert np.mean(relative_gap < tolerance) > 0.8
