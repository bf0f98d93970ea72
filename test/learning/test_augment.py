"""Pair augmentation keeps correspondences exact: flips, scale crops and colour jitter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.learning.augment import (
    AugmentConfig,
    PairAugmentation,
    crop_affine,
    flip_affine,
    transform_points,
    warp_image,
)
from dense_descriptors_ros.learning.flow import FlowLabel
from dense_descriptors_ros.learning.sampling import PairSampler, SamplerConfig
from dense_descriptors_ros.synthetic.textures import smooth_texture

H, W = 48, 64


def _coordinate_image() -> np.ndarray:
    """Pixel (x, y) holds (x, y, 0): its own coordinates."""
    ys, xs = np.mgrid[0:H, 0:W]
    return np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)


def _samples(shift: float = 0.0):
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = shift
    label = FlowLabel(flow, np.ones((H, W), bool))
    mask = np.ones((H, W), bool)
    config = SamplerConfig(num_matches=300, non_matches_per_match=8)
    return PairSampler(config).sample(label, mask, mask, np.random.default_rng(0))


@pytest.mark.parametrize(("horizontal", "vertical"), [(True, False), (False, True), (True, True)])
def test_flips_move_pixels_and_points_identically(horizontal: bool, vertical: bool) -> None:
    image = _coordinate_image()
    affine = flip_affine(H, W, horizontal, vertical)
    flipped = warp_image(image, affine)
    expected = image[:: -1 if vertical else 1, :: -1 if horizontal else 1]
    np.testing.assert_array_equal(flipped, expected)
    points = np.array([[0.0, 0.0], [10.0, 5.0], [W - 1.0, H - 1.0]])
    moved = transform_points(affine, points).astype(int)
    np.testing.assert_array_equal(flipped[moved[:, 1], moved[:, 0], :2], points.astype(int))


def test_paper_flips_keep_every_match_exact() -> None:
    image_a = smooth_texture(H, W, np.random.default_rng(0))
    image_b = image_a.copy()  # identity flow: each match shows the same colour in both images
    augmentation = PairAugmentation(AugmentConfig(hflip_probability=1.0, vflip_probability=1.0))
    out_a, out_b, samples = augmentation(image_a, image_b, _samples(), np.random.default_rng(1))
    np.testing.assert_array_equal(out_a, image_a)  # image a is never flipped
    np.testing.assert_array_equal(out_b, image_b[::-1, ::-1])
    assert samples.match_valid.all()
    a = samples.matches_a.astype(int)
    b = np.rint(samples.matches_b).astype(int)
    np.testing.assert_array_equal(out_a[a[:, 1], a[:, 0]], out_b[b[:, 1], b[:, 0]])


def test_scale_crops_map_correspondences_to_the_same_content() -> None:
    image = smooth_texture(H, W, np.random.default_rng(2), scales=(3, 6)).astype(np.float32)
    affine = crop_affine(H, W, x0=10.3, y0=6.7, crop_w=40.0, crop_h=30.0)
    # cv2.resize of the crop is the same map: pixel areas scale around their corners.
    crop = image[7:37, 10:50]
    resized = cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR)
    shifted = warp_image(image, crop_affine(H, W, 10.0, 7.0, 40.0, 30.0))
    np.testing.assert_allclose(shifted[2:-2, 2:-2], resized[2:-2, 2:-2], atol=1.0)
    warped = warp_image(image, affine)
    points = np.random.default_rng(3).uniform([12, 8], [48, 34], size=(200, 2)).astype(np.float32)
    moved = transform_points(affine, points)
    original = cv2.remap(image, points[:, :1], points[:, 1:], cv2.INTER_LINEAR)[:, 0]
    after = cv2.remap(warped, moved[:, :1], moved[:, 1:], cv2.INTER_LINEAR)[:, 0]
    assert np.abs(after - original).mean() < 2.0  # smooth texture: only interpolation error remains


def test_crops_invalidate_points_that_leave_the_image() -> None:
    augmentation = PairAugmentation(
        AugmentConfig(hflip_probability=0.0, vflip_probability=0.0, crop_probability=1.0, crop_min_scale=0.5)
    )
    image = smooth_texture(H, W, np.random.default_rng(4))
    samples = _samples()
    _, _, out = augmentation(image, image, samples, np.random.default_rng(5))
    assert 0 < out.match_valid.sum() < samples.match_valid.sum()
    kept = out.matches_a[out.match_valid]
    assert (kept >= 0).all() and (kept[:, 0] <= W - 1).all() and (kept[:, 1] <= H - 1).all()
    assert not out.non_match_valid[:, ~out.match_valid].any()


def test_colour_jitter_changes_colours_not_geometry() -> None:
    augmentation = PairAugmentation(
        AugmentConfig(
            hflip_probability=0.0, vflip_probability=0.0, brightness=0.3, contrast=0.3, saturation=0.3, hue_degrees=10
        )
    )
    image = smooth_texture(H, W, np.random.default_rng(6))
    samples = _samples()
    out_a, _, out = augmentation(image, image, samples, np.random.default_rng(7))
    assert not np.array_equal(out_a, image)
    np.testing.assert_array_equal(out.matches_a, samples.matches_a)
    np.testing.assert_array_equal(out.matches_b, samples.matches_b)


def test_background_randomisation_keeps_the_object_and_replaces_the_rest() -> None:
    config = AugmentConfig(hflip_probability=0.0, vflip_probability=0.0, background_probability=1.0)
    augmentation = PairAugmentation(config)
    image = smooth_texture(H, W, np.random.default_rng(8))
    mask = np.zeros((H, W), bool)
    mask[10:30, 20:44] = True
    samples = _samples()
    backgrounds = []
    for seed in (9, 10):
        out_a, out_b, out = augmentation(image, image, samples, np.random.default_rng(seed), (mask, mask))
        for out_image in (out_a, out_b):
            np.testing.assert_array_equal(out_image[mask], image[mask])
            assert np.abs(out_image[~mask].astype(int) - image[~mask]).mean() > 20
        np.testing.assert_array_equal(out.matches_b, samples.matches_b)
        backgrounds.append(out_a[~mask])
    assert not np.array_equal(*backgrounds)  # a new texture every time
    # Without masks (or with a mask that is the whole frame) the images are left alone.
    out_a, _, _ = augmentation(image, image, samples, np.random.default_rng(9))
    full = np.ones((H, W), bool)
    out_full, _, _ = augmentation(image, image, samples, np.random.default_rng(9), (full, full))
    np.testing.assert_array_equal(out_a, image)
    np.testing.assert_array_equal(out_full, image)
