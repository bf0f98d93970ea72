"""Dense descriptor baselines: shapes, unit norm, and that they find a translated texture better than chance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.evaluation.baselines import (
    BASELINE_NAMES,
    BaselineUnavailable,
    DenseOrb,
    DenseSift,
    RawColourPatch,
    make_baseline,
    upsample_grid,
)
from dense_descriptors_ros.metrics.error_percentile import mean_error_percentile
from dense_descriptors_ros.metrics.matching import grid_points, match_nearest, pck

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def textured_image(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    noise = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 1.2)


def build(name: str):
    try:
        return make_baseline(name)
    except BaselineUnavailable as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_baseline_shape_dtype_and_unit_norm(name):
    method = build(name)
    image = textured_image(37, 53)
    desc = method.compute(image)
    assert desc.shape[:2] == (37, 53) and desc.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(desc, axis=2), 1.0, atol=1e-4)
    mono = method.compute(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    assert mono.shape == desc.shape
    assert method.name == name


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_baselines_reject_bad_images(name):
    method = build(name)
    with pytest.raises(ValueError, match="uint8"):
        method.compute(np.zeros((8, 8, 3), np.float32))


def test_dense_sift_matches_a_translated_texture():
    image = textured_image()
    moved = np.roll(image, shift=(4, 8), axis=(0, 1))  # x + 8, y + 4: on the SIFT grid (step 4)
    pts = grid_points(72, 96, 6, margin=12)
    pts = pts[(pts[:, 0] < 80) & (pts[:, 1] < 60)]
    sift = DenseSift(step=4)
    desc_a, desc_b = sift.compute(image), sift.compute(moved)
    result = pck(match_nearest(desc_a, desc_b, pts), pts + np.array([8, 4]))
    assert result["pck@1"] > 0.9  # chance of a 1-px hit among 72 x 96 pixels is ~0.1 %
    assert mean_error_percentile(desc_a, desc_b, pts, pts + np.array([8, 4])) < 1.0


def test_orb_bits_rank_like_hamming():
    orb = DenseOrb(step=1)
    desc = orb.compute(textured_image(48, 48))
    a, b, c = desc[10, 10], desc[30, 30], desc[10, 11]
    # For +-1/16 vectors, squared L2 = 4/256 * Hamming distance: values are multiples of 1/64.
    for u, v in ((a, b), (a, c)):
        d2 = float(np.sum((u - v) ** 2))
        assert d2 * 64 == pytest.approx(round(d2 * 64), abs=1e-3)


def test_raw_colour_is_brightness_invariant():
    image = textured_image().astype(np.int32)
    raw = RawColourPatch(radius=2)
    brighter = np.clip(image + 20, 0, 255).astype(np.uint8)
    darker = np.clip(image, 0, 235).astype(np.uint8)
    np.testing.assert_allclose(raw.compute(brighter), raw.compute(darker), atol=0.2)


def test_upsample_grid_hits_grid_points_exactly():
    grid = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    grid /= np.linalg.norm(grid, axis=2, keepdims=True)
    dense = upsample_grid(grid, step=4, height=12, width=16)
    np.testing.assert_allclose(dense[::4, ::4], grid, atol=1e-5)
    np.testing.assert_allclose(dense[11, 15], grid[2, 3], atol=1e-5)  # past the last grid point: border value


def test_unknown_baseline_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("surf")
