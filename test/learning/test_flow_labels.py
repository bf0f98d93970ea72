"""Flow labels: agreement with known synthetic motion, forward-backward rejection of occlusions, chaining,
shrinking, the disk cache, and the RAFT no-download rule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.learning.flow import FlowConfig, FlowLabel, FlowLabeler, shrink_label
from dense_descriptors_ros.synthetic.textures import smooth_texture

H, W = 96, 128


def _affine_pair(
    angle_deg: float, shift: tuple[float, float], seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A texture, the texture moved by a known rotation + translation, and the true flow."""
    texture = smooth_texture(H, W, np.random.default_rng(seed))
    affine = cv2.getRotationMatrix2D((W / 2, H / 2), angle_deg, 1.0)
    affine[:, 2] += shift
    moved = cv2.warpAffine(texture, affine, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    true_x = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    true_y = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    return texture, moved, np.stack([true_x - xs, true_y - ys], -1)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_matches_known_rotation_and_translation(method: str) -> None:
    a, b, truth = _affine_pair(2.0, (1.7, -1.2))
    label = FlowLabeler(FlowConfig(method=method)).label(a, b)
    error = np.linalg.norm(label.flow - truth, axis=-1)
    assert label.valid.mean() > 0.8
    assert np.median(error[label.valid]) < 0.5
    # Pixels that leave the frame are never valid.
    targets = label.targets()
    assert (targets[label.valid] >= 0).all() and (targets[label.valid, 0] <= W - 1).all()


def test_forward_backward_check_rejects_occluded_pixels() -> None:
    rng = np.random.default_rng(3)
    background = smooth_texture(H, W, rng, scales=(2, 6)) // 2  # dark background, bright square
    square = smooth_texture(32, 32, rng, scales=(2, 4)) // 2 + 128
    a, b = background.copy(), background.copy()
    a[30:62, 30:62] = square
    b[30:62, 38:70] = square  # the square slides 8 px right over a static background
    label = FlowLabeler().label(a, b)
    occluded = np.zeros((H, W), bool)
    occluded[32:60, 63:69] = True  # background of a that the square covers in b (1-2 px from the edges)
    visible_background = np.ones((H, W), bool)
    visible_background[24:68, 24:76] = False
    assert label.valid[occluded].mean() < 0.25
    assert label.valid[visible_background].mean() > 0.85
    square_core = np.zeros((H, W), bool)
    square_core[34:58, 34:58] = True
    valid_core = label.valid & square_core
    assert valid_core.sum() > 0.9 * square_core.sum()
    assert np.median(np.abs(label.flow[valid_core, 0] - 8.0)) < 0.5


def test_chained_flow_over_three_frames_composes_the_motion() -> None:
    texture = smooth_texture(H, W, np.random.default_rng(5))
    frames = [
        cv2.warpAffine(texture, np.float64([[1, 0, 1.5 * k], [0, 1, -1.0 * k]]), (W, H), borderMode=cv2.BORDER_REFLECT)
        for k in range(4)
    ]
    label = FlowLabeler().label_chain(frames)
    assert label.valid.mean() > 0.7
    assert np.median(label.flow[label.valid, 0]) == pytest.approx(4.5, abs=0.3)
    assert np.median(label.flow[label.valid, 1]) == pytest.approx(-3.0, abs=0.3)
    assert not label.valid[:, -3:].any()  # those pixels land outside the last frame


def test_shrunk_label_is_the_same_motion_at_the_small_size() -> None:
    # x' = M x + m in small pixels is X' = M (X - 0.5) + 2 m + 0.5 in pixels of the twice larger image.
    M, m = np.array([[0.98, -0.05], [0.04, 1.01]]), np.array([1.3, -2.2])
    ys, xs = np.mgrid[0 : 2 * H, 0 : 2 * W].astype(np.float64)
    big = np.stack([xs, ys], -1)
    big_flow = (big - 0.5) @ M.T + 2 * m + 0.5 - big
    valid = np.ones((2 * H, 2 * W), bool)
    valid[10, 21] = False  # one bad large pixel spoils its block only
    small = shrink_label(FlowLabel(big_flow.astype(np.float32), valid), 2)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    pts = np.stack([xs, ys], -1)
    np.testing.assert_allclose(small.flow, pts @ M.T + m - pts, atol=1e-4)
    assert small.flow.shape == (H, W, 2) and small.flow.dtype == np.float32
    assert not small.valid[5, 10] and small.valid.sum() == H * W - 1
    assert shrink_label(small, 1) is small
    with pytest.raises(ValueError, match="multiple"):
        shrink_label(FlowLabel(np.zeros((9, 8, 2), np.float32), np.ones((9, 8), bool)), 2)


def test_flow_cache_hits_on_second_call(tmp_path: Path) -> None:
    a, b, _ = _affine_pair(0.0, (1.0, 0.5))
    labeler = FlowLabeler(FlowConfig(cache_dir=str(tmp_path)))
    first = labeler.label(a, b)
    second = labeler.label(a, b)
    assert (labeler.cache_misses, labeler.cache_hits) == (1, 1)
    np.testing.assert_array_equal(first.flow, second.flow)
    np.testing.assert_array_equal(first.valid, second.valid)
    other = FlowLabeler(FlowConfig(cache_dir=str(tmp_path), method="farneback"))
    other.label(a, b)
    assert other.cache_misses == 1  # method parameters are part of the key
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_raft_without_local_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        FlowLabeler(FlowConfig(method="raft", raft_weights=str(tmp_path / "raft_small.pth")))


def test_bad_frames_are_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        FlowLabeler().label(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        FlowLabeler().label(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))
