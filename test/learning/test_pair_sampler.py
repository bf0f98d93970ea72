"""PairSampler statistics: match counts, matches on the masks, non-matches on the object, SAND radius bands,
and UCN hard negatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_descriptors_ros.learning.flow import FlowLabel
from dense_descriptors_ros.learning.sampling import PairSampler, SamplerConfig

H, W = 60, 80


def _translation_label(dx: float, dy: float) -> FlowLabel:
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    valid = np.ones((H, W), bool)
    valid[:, :5] = False  # some pixels without trustworthy flow
    return FlowLabel(flow, valid)


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_matches_are_on_both_masks_and_follow_the_flow() -> None:
    label = _translation_label(3.0, -2.0)
    mask_a, mask_b = _box(10, 10, 50, 40), _box(13, 8, 53, 38)
    samples = PairSampler(SamplerConfig(num_matches=500, non_matches_per_match=20)).sample(
        label, mask_a, mask_b, np.random.default_rng(0)
    )
    assert samples.matches_a.shape == (500, 2) and samples.non_matches_b.shape == (1, 500, 20, 2)
    assert samples.num_valid_matches == 500
    a = samples.matches_a.astype(int)
    b = np.rint(samples.matches_b).astype(int)
    assert mask_a[a[:, 1], a[:, 0]].all() and mask_b[b[:, 1], b[:, 0]].all()
    np.testing.assert_allclose(samples.matches_b - samples.matches_a, [[3.0, -2.0]] * 500)
    assert len({tuple(p) for p in a}) == 500  # without replacement


def test_fewer_candidates_than_asked_gives_valid_flags() -> None:
    label = _translation_label(0.0, 0.0)
    mask = _box(20, 20, 30, 25)  # 50 pixels
    samples = PairSampler(SamplerConfig(num_matches=200, non_matches_per_match=5)).sample(
        label, mask, mask, np.random.default_rng(0)
    )
    assert samples.num_valid_matches == 50
    assert not samples.non_match_valid[:, ~samples.match_valid].any()
    empty = PairSampler().sample(label, np.zeros((H, W), bool), mask, np.random.default_rng(0))
    assert empty.num_valid_matches == 0 and not empty.non_match_valid.any()


def test_object_non_matches_are_uniform_on_the_object() -> None:
    label = _translation_label(0.0, 0.0)
    mask = _box(10, 10, 70, 50)
    config = SamplerConfig(num_matches=300, non_matches_per_match=100, min_non_match_px=2.0)
    samples = PairSampler(config).sample(label, mask, mask, np.random.default_rng(1))
    points = samples.non_matches_b[0][samples.non_match_valid[0]].astype(int)
    assert mask[points[:, 1], points[:, 0]].all()
    distance = np.linalg.norm(samples.non_matches_b[0] - samples.matches_b[:, None], axis=-1)
    assert (distance[samples.non_match_valid[0]] > 2.0).all()
    assert samples.non_match_valid[0].mean() > 0.99
    # Uniform over the box: mean near its centre, spread of a uniform distribution (std = side / sqrt(12)).
    assert points[:, 0].mean() == pytest.approx(39.5, abs=1.0)
    assert points[:, 0].std() == pytest.approx(60 / math.sqrt(12), rel=0.05)


def test_background_fraction_draws_that_share_of_non_matches_off_the_object() -> None:
    label = _translation_label(0.0, 0.0)
    mask = _box(20, 15, 60, 45)
    config = SamplerConfig(num_matches=200, non_matches_per_match=40, background_fraction=0.25)
    samples = PairSampler(config).sample(label, mask, mask, np.random.default_rng(2))
    points = samples.non_matches_b[0][samples.non_match_valid[0]].astype(int)
    on_object = mask[points[:, 1], points[:, 0]]
    assert len(points) == pytest.approx(200 * 40, rel=0.02)
    assert (~on_object).mean() == pytest.approx(0.25, abs=0.01)
    off = points[~on_object]
    assert off[:, 0].min() < 5 and off[:, 0].max() > W - 6  # spread over the whole background
    assert len({tuple(p) for p in off}) > 1000


def test_local_fraction_draws_that_share_of_non_matches_near_the_match_on_the_object() -> None:
    label = _translation_label(0.0, 0.0)
    mask = _box(10, 10, 70, 50)
    config = SamplerConfig(
        num_matches=200, non_matches_per_match=40, background_fraction=0.25, local_fraction=0.5, local_radius_px=6.0
    )
    samples = PairSampler(config).sample(label, mask, mask, np.random.default_rng(3))
    distance = np.linalg.norm(samples.non_matches_b[0] - samples.matches_b[:, None], axis=-1)
    local = slice(10, 30)  # 40 columns: 10 uniform on the object, 20 local, 10 off the object
    valid_local = samples.non_match_valid[0][:, local]
    assert valid_local.mean() > 0.8  # only the ones falling off the box edge are dropped
    assert ((distance[:, local] > 2.0) & (distance[:, local] < 6.0))[valid_local].all()
    points = samples.non_matches_b[0][:, local][valid_local].astype(int)
    assert mask[points[:, 1], points[:, 0]].all()
    assert np.median(distance[:, :10][samples.non_match_valid[0][:, :10]]) > 10.0


def test_sand_bands_give_per_group_radii() -> None:
    label = _translation_label(1.0, 1.0)
    mask = np.ones((H, W), bool)
    config = SamplerConfig(
        num_matches=200,
        non_matches_per_match=50,
        negatives="bands",
        band_min_px=[0.0, 0.0, 8.0],
        band_max_px=[math.inf, 6.0, 12.0],
        min_non_match_px=1.0,
    )
    samples = PairSampler(config).sample(label, mask, mask, np.random.default_rng(2))
    assert samples.non_matches_b.shape == (3, 200, 50, 2)
    distance = np.linalg.norm(samples.non_matches_b - samples.matches_b[None, :, None], axis=-1)
    valid = samples.non_match_valid
    global_d, local_d, ring_d = distance[0][valid[0]], distance[1][valid[1]], distance[2][valid[2]]
    assert (local_d > 1.0).all() and (local_d < 6.0).all()
    assert (ring_d > 8.0).all() and (ring_d < 12.0).all()
    assert np.median(global_d) > 20.0  # global negatives spread over the whole image
    assert valid[1].mean() > 0.8 and valid[2].mean() > 0.5


def test_band_config_is_checked() -> None:
    with pytest.raises(ValueError, match="same, non-zero length"):
        SamplerConfig(band_min_px=[0.0, 1.0], band_max_px=[5.0])
    with pytest.raises(ValueError, match="alpha < beta"):
        SamplerConfig(band_min_px=[10.0], band_max_px=[5.0])


def test_hard_negative_is_the_descriptor_nearest_neighbour_when_far() -> None:
    sampler = PairSampler(SamplerConfig(hard_negative_min_px=16.0, hard_negative_stride=1))
    desc_b = torch.nn.functional.normalize(torch.randn(8, H, W), dim=0)
    matches_b = torch.tensor([[10.0, 10.0], [40.0, 30.0]])
    # Query 0 copies the descriptor at (60, 50): far from its true match. Query 1 copies the one at its match.
    anchors = torch.stack([desc_b[:, 50, 60], desc_b[:, 30, 40]])
    positions, hard = sampler.hard_negatives(anchors, desc_b, matches_b)
    assert positions[0].tolist() == [60.0, 50.0] and positions[1].tolist() == [40.0, 30.0]
    assert hard.tolist() == [True, False]
