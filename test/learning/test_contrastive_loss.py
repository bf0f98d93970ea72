"""PixelwiseContrastiveLoss values on hand-built descriptors (papers/000 eq. 1, DON hard-negative scaling)."""

from __future__ import annotations

import math

import pytest
import torch

from dense_descriptors_ros.learning.loss import (
    LossConfig,
    PixelwiseContrastiveLoss,
    gather_descriptors,
)


def _unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _image(pixels: dict[tuple[int, int], list[float]], dim: int, h: int = 4, w: int = 5) -> torch.Tensor:
    """(1, D, H, W) descriptors: a default unit vector, with given pixels (x, y) set."""
    desc = torch.zeros(1, dim, h, w)
    desc[0, 0] = 1.0
    for (x, y), value in pixels.items():
        desc[0, :, y, x] = torch.tensor(value)
    return desc


def _call(loss, desc_a, desc_b, ma, mb, nm, nm_valid=None):
    ma, mb = torch.tensor([ma], dtype=torch.float32), torch.tensor([mb], dtype=torch.float32)
    nm = torch.tensor([nm], dtype=torch.float32)
    nm_valid = torch.ones(nm.shape[:-1], dtype=torch.bool) if nm_valid is None else torch.tensor([nm_valid])
    return loss(desc_a, desc_b, ma, mb, torch.ones(ma.shape[:2], dtype=torch.bool), nm, nm_valid)


def test_match_and_hard_negative_terms_by_hand() -> None:
    # Match 0: a(0,0)=[1,0], b(1,1)=[0.6,0.8]: D^2 = 0.16 + 0.64 = 0.8.  Match 1: a(2,0)=[0,1], b(3,1)=[0,1]: D^2 = 0.
    desc_a = _image({(0, 0): [1.0, 0.0], (2, 0): [0.0, 1.0]}, 2)
    desc_b = _image({(1, 1): [0.6, 0.8], (3, 1): [0.0, 1.0], (4, 3): [0.8, 0.6]}, 2)
    # Non-matches of match 0: b(4,3)=[0.8,0.6] (D = sqrt(0.04+0.36) = 0.632 -> inside margin 1.0),
    # b(0,0)=[1,0] (D = 0 -> hinge 1).  Non-matches of match 1: b(3,1) (D=0 -> 1), b(0,0) (D = sqrt 2 -> 0).
    nm = [[[[4, 3], [0, 0]], [[3, 1], [0, 0]]]]  # (G=1, M=2, K=2, 2)
    loss = PixelwiseContrastiveLoss(LossConfig(margin=1.0))
    total, parts = _call(loss, desc_a, desc_b, [[0, 0], [2, 0]], [[1, 1], [3, 1]], nm)
    match = (0.8 + 0.0) / 2
    hinges = [(1.0 - math.sqrt(0.4)) ** 2, 1.0, 1.0, 0.0]
    non_match = sum(hinges) / 3  # divided by the 3 hard negatives, not by all 4
    assert parts["match_loss"] == pytest.approx(match, abs=1e-5)
    assert parts["non_match_loss"] == pytest.approx(non_match, abs=1e-5)
    assert parts["hard_negative_fraction"] == pytest.approx(0.75)
    assert float(total) == pytest.approx(match + non_match, abs=1e-5)
    plain = PixelwiseContrastiveLoss(LossConfig(margin=1.0, scale_by_hard_negatives=False))
    _, parts = _call(plain, desc_a, desc_b, [[0, 0], [2, 0]], [[1, 1], [3, 1]], nm)
    assert parts["non_match_loss"] == pytest.approx(sum(hinges) / 4, abs=1e-5)


def test_invalid_non_matches_are_ignored_and_zero_without_hard_ones() -> None:
    desc_a = _image({(0, 0): [1.0, 0.0]}, 2)
    desc_b = _image({(1, 1): [1.0, 0.0], (2, 2): [0.0, 1.0], (3, 3): [1.0, 0.0]}, 2)
    loss = PixelwiseContrastiveLoss(LossConfig(margin=0.5))
    # Only non-match (2,2) is valid and it is at D = sqrt 2 > margin: no hard negatives, non-match loss 0.
    total, parts = _call(loss, desc_a, desc_b, [[0, 0]], [[1, 1]], [[[[2, 2], [3, 3]]]], [[[True, False]]])
    assert parts["non_match_loss"] == 0.0 and parts["match_loss"] == pytest.approx(0.0, abs=1e-6)
    assert float(total) == pytest.approx(0.0, abs=1e-6)


def test_channel_groups_are_normalised_and_summed_with_their_margins() -> None:
    # D=4 as two groups of 2. Group 0 of a(0,0)=[1,0], of b(1,0)=[0,1] (D^2 = 2); group 1 equal (D^2 = 0).
    desc_a = _image({(0, 0): [1.0, 0.0, 0.0, 1.0]}, 4)
    desc_b = _image({(1, 0): [0.0, 1.0, 0.0, 1.0], (2, 0): [1.0, 0.0, 0.0, 1.0]}, 4)
    loss = PixelwiseContrastiveLoss(LossConfig(group_margins=[0.5, 1.5]), channel_groups=(2, 2))
    # One non-match per group, both at b(2,0): group 0 D = 0 -> 0.25, group 1 D = 0 -> 2.25.
    nm = [[[[2, 0]]], [[[2, 0]]]]  # (G=2, M=1, K=1, 2)
    total, parts = _call(loss, desc_a, desc_b, [[0, 0]], [[1, 0]], nm)
    assert parts["match_loss_g0"] == pytest.approx(2.0, abs=1e-5)
    assert parts["match_loss_g1"] == pytest.approx(0.0, abs=1e-5)
    assert parts["non_match_loss_g0"] == pytest.approx(0.25, abs=1e-5)
    assert parts["non_match_loss_g1"] == pytest.approx(2.25, abs=1e-5)
    assert float(total) == pytest.approx(4.5, abs=1e-5)
    with pytest.raises(ValueError, match="group_margins"):
        PixelwiseContrastiveLoss(LossConfig(group_margins=[0.5]), channel_groups=(2, 2))


@pytest.mark.parametrize(("match_weight", "non_match_weight"), [(1.0, 0.0), (0.0, 1.0)])
def test_a_gradient_step_pulls_matches_together_and_pushes_non_matches_apart(
    match_weight: float, non_match_weight: float
) -> None:
    torch.manual_seed(0)
    desc_a = torch.nn.functional.normalize(torch.randn(1, 3, 6, 6), dim=1).requires_grad_(True)
    desc_b = torch.nn.functional.normalize(torch.randn(1, 3, 6, 6), dim=1)
    config = LossConfig(margin=2.0, match_weight=match_weight, non_match_weight=non_match_weight)
    total, _ = _call(PixelwiseContrastiveLoss(config), desc_a, desc_b, [[1, 1]], [[2, 2]], [[[[4, 4]]]])
    total.backward()
    moved = desc_a.detach() - 0.05 * desc_a.grad
    before, after = desc_a.detach()[0, :, 1, 1], moved[0, :, 1, 1]
    match_b, non_match_b = desc_b[0, :, 2, 2], desc_b[0, :, 4, 4]
    if match_weight:
        assert (after - match_b).norm() < (before - match_b).norm()
    else:
        assert (after - non_match_b).norm() > (before - non_match_b).norm()


def test_non_match_descriptors_are_gathered_at_the_nearest_pixel() -> None:
    desc = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    gathered = gather_descriptors(desc, torch.tensor([[[[3.0, 2.0], [0.2, 0.4]]]]))
    assert gathered.shape == (1, 1, 2, 2)
    assert gathered[0, 0].tolist() == [[11.0, 23.0], [0.0, 12.0]]
