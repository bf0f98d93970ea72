"""Keypoints and descriptors for SLAM: bilinear descriptor sampling, grid spread, ORB distances, input checks."""

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.slam.features import (
    FeatureConfig,
    LearnedDenseFeatures,
    OrbFeatures,
    grid_spread,
    sample_descriptors,
)


def test_bilinear_descriptor_sampling_is_exact_on_a_linear_field():
    h, w = 20, 30
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.stack([xs, ys, np.full_like(xs, 10.0)], axis=-1)
    kp = np.array([[3.25, 4.5], [17.75, 11.0], [0.0, 0.0]], np.float32)
    d = sample_descriptors(field, kp)
    expected = np.column_stack([kp[:, 0], kp[:, 1], np.full(3, 10.0)])
    assert np.allclose(d, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)


def test_grid_spread_covers_every_cell():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.uniform(0, 50, (500, 2)), rng.uniform(50, 100, (4, 2))]).astype(np.float32)
    scores = np.concatenate([np.ones(500), np.zeros(4)])
    keep = grid_spread(points, scores, (100, 100), cells=2, limit=8)
    assert len(keep) == 8
    assert (points[keep] >= 50).all(axis=1).sum() >= 2  # the sparse corner still gets its share


def test_orb_hamming_distance_matches_opencv(first_frame):
    orb = OrbFeatures()
    f = orb.extract(first_frame.left)
    assert len(f) > 100 and f.descriptors.dtype == np.uint8
    d = orb.distances(f.descriptors[:20], f.descriptors[:30])
    assert d[3, 7] == cv2.norm(f.descriptors[3], f.descriptors[7], cv2.NORM_HAMMING)
    pairs = zip(f.descriptors[:20], f.descriptors[10:30], strict=True)
    expected = [cv2.norm(a, b, cv2.NORM_HAMMING) for a, b in pairs]
    assert np.allclose(orb.paired_distances(f.descriptors[:20], f.descriptors[10:30]), expected)


def test_learned_features_need_the_descriptor_image(first_frame):
    with pytest.raises(ValueError, match="descriptor image"):
        LearnedDenseFeatures().extract(first_frame.left)
    with pytest.raises(ValueError, match="does not support detector"):
        OrbFeatures(FeatureConfig(detector="saliency"))
