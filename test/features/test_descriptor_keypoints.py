"""features/keypoints.py: distinctiveness of descriptors and the grid spread of the points chosen from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_descriptors_ros.features.keypoints import (
    distinctiveness_map,
    grid_cells,
    grid_spread,
    select_distinctive_points,
)
from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform

H, W = 96, 96


def _plane_descriptors() -> np.ndarray:
    return SyntheticSequence(np.array([similarity_transform(0.0, 1.0, 0.0, 0.0, (W / 2, H / 2))]), H, W).frame(0)[1]


def test_grid_spread_covers_every_cell():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.uniform(0, 50, (500, 2)), rng.uniform(50, 100, (4, 2))]).astype(np.float32)
    scores = np.concatenate([np.ones(500), np.zeros(4)])
    keep = grid_spread(scores, grid_cells(points, (100, 100), cells=2), limit=8)
    assert len(keep) == 8
    assert (points[keep] >= 50).all(axis=1).sum() >= 2  # the sparse corner still gets its share


def test_grid_spread_takes_cells_round_robin_best_first():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.5])
    cells = np.array([0, 0, 0, 1, 2])
    assert grid_spread(scores, cells, 3).tolist() == [0, 4, 3]  # each cell's best, by score
    assert grid_spread(scores, cells, 4).tolist() == [0, 4, 3, 1]  # then the second round
    assert grid_spread(scores, cells, 10).tolist() == [0, 1, 2, 4, 3]  # all of them: by score only
    points = np.array([[0.0, 0.0], [99.9, 0.0], [0.0, 99.9], [50.0, 50.0]])
    assert grid_cells(points, (100, 100), 2).tolist() == [0, 1, 2, 3]


def test_distinctiveness_is_high_on_corners_and_low_on_edges_and_flat_regions():
    chw = torch.zeros(2, 30, 30)
    chw[0] = 1.0
    other = torch.tensor([0.0, 1.0])
    chw[:, :, 8] = other[:, None]  # a vertical line (an edge in descriptor space)
    chw[:, 20, 20] = other  # a dot: different from the surroundings in every direction
    score = distinctiveness_map(chw, 2)
    assert score[20, 20] == pytest.approx(2**0.5)  # unit descriptors at right angles
    assert score[5, 25] == 0 and score[15, 8] == 0 and score[20, 22] == 0  # flat, on the edge, beside the dot
    assert (score[:2] == 0).all() and (score[:, -2:] == 0).all()  # border pixels lack neighbours


def test_automatic_points_are_distinctive_and_spread_over_the_mask():
    desc = _plane_descriptors()
    points = select_distinctive_points(desc, 16)
    assert len(points) == 16 and points.dtype == np.float32
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(16) * 1e3
    assert distances.min() >= 4.0  # one point per grid cell, never clumped
    assert points[:, 0].max() - points[:, 0].min() > 0.6 * W
    assert points[:, 1].max() - points[:, 1].min() > 0.6 * H
    score = distinctiveness_map(torch.from_numpy(desc).permute(2, 0, 1), 4).numpy()
    chosen = score[points[:, 1].astype(int), points[:, 0].astype(int)]
    assert np.median(chosen) > np.median(score[score > 0])
    mask = np.zeros((H, W), bool)
    mask[10:40, 50:90] = True
    on_mask = select_distinctive_points(desc, 8, mask=mask)
    assert 1 <= len(on_mask) <= 8
    assert mask[on_mask[:, 1].astype(int), on_mask[:, 0].astype(int)].all()
    with pytest.raises(ValueError, match="mask"):
        select_distinctive_points(desc, 4, mask=np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="count"):
        select_distinctive_points(desc, 0)
