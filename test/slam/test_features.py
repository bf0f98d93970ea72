"""Keypoints and descriptors for SLAM: bilinear descriptor sampling, grid spread, ORB distances, input checks."""

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.slam.features import (
    FeatureConfig,
    LearnedDenseFeatures,
    OrbFeatures,
)


def test_orb_hamming_distance_matches_opencv(first_frame):
    orb = OrbFeatures()
    f = orb.extract(first_frame.left)
    assert len(f) > 100 and f.descriptors.dtype == np.uint8
    d = orb.distances(f.descriptors[:20], f.descriptors[:30])
    assert d[3, 7] == cv2.norm(f.descriptors[3], f.descriptors[7], cv2.NORM_HAMMING)
    pairs = zip(f.descriptors[:20], f.descriptors[10:30], strict=True)
    expected = [cv2.norm(a, b, cv2.NORM_HAMMING) for a, b in pairs]
    assert np.allclose(orb.paired_distances(f.descriptors[:20], f.descriptors[10:30]), expected)
    # Broadcast as projection search calls it: each point against its candidates.
    candidates = np.stack([f.descriptors[10:30], f.descriptors[30:50]], axis=1)
    d = orb.paired_distances(f.descriptors[:20, None, :], candidates)
    assert d.shape == (20, 2) and d.dtype == np.float32
    assert d[5, 1] == cv2.norm(f.descriptors[5], f.descriptors[35], cv2.NORM_HAMMING)


def test_learned_features_need_the_descriptor_image(first_frame):
    with pytest.raises(ValueError, match="descriptor image"):
        LearnedDenseFeatures().extract(first_frame.left)
    with pytest.raises(ValueError, match="does not support detector"):
        OrbFeatures(FeatureConfig(detector="saliency"))
