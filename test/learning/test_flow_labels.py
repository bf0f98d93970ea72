"""Flow labels: agreement with known synthetic motion, forward-backward rejection of occlusions, chaining and
its cycle and direct-flow checks on scripted flows with a known answer, shrinking, the disk cache, the RAFT
no-download rule, and the label error against the renderer's ground truth on the rendered drill."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scripted_flow import ScriptedFlowLabeler, drifting_flows, scripted_frames

from dense_descriptors_ros.learning.dataset import load_clip
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


@pytest.mark.parametrize("factor", [1, 2])
def test_cycle_check_rejects_the_band_where_chained_steps_drift(factor: int) -> None:
    """Each step drifts 0.35 training px in rows 12-23 and passes the forward-backward check; over two steps the
    backward chain misses by 0.7 px there, so the cycle check (0.5 training px, at either flow scale) rejects the
    band and keeps every other pixel that stays in view."""
    h, w = 32, 48
    flows = drifting_flows(4, h * factor, w * factor, slice(12 * factor, 24 * factor), 0.35 * factor, step_px=factor)
    frames = scripted_frames(4, h * factor, w * factor)
    band, rest, in_view = np.s_[12:24, : w - 6], np.r_[1:12, 24 : h - 1], np.s_[: w - 6]  # rows 0, h - 1: border
    label = ScriptedFlowLabeler(flows).label_chain(frames[:3], factor)
    assert label.flow.shape == (h, w, 2)
    np.testing.assert_allclose(label.flow[band][..., 0], 2.7, atol=0.01)
    np.testing.assert_allclose(label.cycle_error[band], 0.7, atol=0.01)
    np.testing.assert_allclose(label.cycle_error[rest][:, in_view], 0.0, atol=0.01)
    assert not label.valid[12:24].any()
    assert label.valid[rest][:, in_view].all()
    assert not label.valid[:, w - 3 :].any()  # those pixels land outside the last frame
    # Without the cycle check the per-step check keeps the drifted band; a looser threshold keeps it too.
    for config in (FlowConfig(cycle_max_px=0.0), FlowConfig(cycle_max_px=1.0)):
        assert ScriptedFlowLabeler(flows, config).label_chain(frames[:3], factor).valid[band].all()
    # A single step keeps the forward-backward check alone; its cycle error is still measured.
    step = ScriptedFlowLabeler(flows).label_chain(frames[:2], factor)
    np.testing.assert_allclose(step.cycle_error[band], 0.35, atol=0.01)
    assert step.valid[band].all() and step.direct_error is None


def test_direct_flow_check_rejects_a_drift_the_cycle_check_cannot_see() -> None:
    """Forward and backward steps that drift alike (0.5 px per step in rows 12-23) make a cycle consistent chain;
    the direct flow between the pair's frames shows the 1.5 px drift over three steps."""
    h, w = 32, 48
    flows = drifting_flows(4, h, w, slice(12, 24), 0.5, symmetric=True)
    frames = scripted_frames(4, h, w)
    band, rest = np.s_[12:24, : w - 7], np.r_[1:12, 24 : h - 1]
    cycle_only = ScriptedFlowLabeler(flows).label_chain(frames)
    np.testing.assert_allclose(cycle_only.cycle_error[band], 0.0, atol=0.01)
    assert cycle_only.valid[band].all() and cycle_only.direct_error is None
    labeler = ScriptedFlowLabeler(flows, FlowConfig(direct_max_px=1.0))
    label = labeler.label_chain(frames)
    np.testing.assert_allclose(label.direct_error[band], 1.5, atol=0.01)
    np.testing.assert_allclose(label.direct_error[rest][:, : w - 7], 0.0, atol=0.01)
    assert not label.valid[12:24].any() and label.valid[rest][:, : w - 7].all()
    assert labeler.calls == 2 * 4  # both directions of three steps and of the direct pair


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


def test_flow_cache_serves_both_orders_of_a_pair_and_every_threshold(tmp_path: Path) -> None:
    a, b, _ = _affine_pair(0.0, (1.0, 0.5))
    labeler = FlowLabeler(FlowConfig(cache_dir=str(tmp_path)))
    first = labeler.label(a, b)
    second = labeler.label(a, b)
    back = labeler.label(b, a)  # the backward flow was computed with the forward one
    assert (labeler.cache_misses, labeler.cache_hits) == (1, 2)
    np.testing.assert_array_equal(first.flow, second.flow)
    np.testing.assert_array_equal(first.valid, second.valid)
    uncached = FlowLabeler()
    for cached, (x, y) in ((first, (a, b)), (back, (b, a))):
        fresh = uncached.label(x, y)
        np.testing.assert_array_equal(cached.flow, fresh.flow)
        np.testing.assert_array_equal(cached.valid, fresh.valid)
    # The checks act on the cached flows: other tolerances reuse the file and give their own label.
    strict = FlowLabeler(FlowConfig(cache_dir=str(tmp_path), fb_alpha=0.0, fb_beta=0.001))
    assert strict.label(a, b).valid.sum() < 0.8 * first.valid.sum()
    assert (strict.cache_misses, strict.cache_hits) == (0, 1)
    for changed in ({"method": "farneback"}, {"dis_preset": "fast"}):  # parameters of the flow are in the key
        other = FlowLabeler(FlowConfig(cache_dir=str(tmp_path), **changed))
        other.label(a, b)
        assert other.cache_misses == 1, changed
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_chained_labels_reuse_cached_steps_across_thresholds(tmp_path: Path) -> None:
    texture = smooth_texture(H, W, np.random.default_rng(6))
    frames = [cv2.warpAffine(texture, np.float64([[1, 0, 1.2 * k], [0, 1, 0]]), (W, H)) for k in range(4)]
    first = FlowLabeler(FlowConfig(cache_dir=str(tmp_path), direct_max_px=1.0))
    label = first.label_chain(frames)
    assert first.cache_misses == 4  # three steps and the direct flow 0 -> 3
    looser = FlowLabeler(FlowConfig(cache_dir=str(tmp_path), cycle_max_px=2.0, direct_max_px=3.0))
    loose = looser.label_chain(frames)
    assert (looser.cache_misses, looser.cache_hits) == (0, 4)
    np.testing.assert_array_equal(loose.flow, label.flow)
    assert (loose.valid >= label.valid).all()


def test_raft_without_local_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        FlowLabeler(FlowConfig(method="raft", raft_weights=str(tmp_path / "raft_small.pth")))


def test_bad_frames_are_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        FlowLabeler().label(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        FlowLabeler().label(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32))


def test_labels_on_the_rendered_drill_stay_within_measured_bounds(tmp_path: Path) -> None:
    """Labels at 160x120 with the default flow at 2x (320x240 frames) on 16 rendered drill frames against the
    renderer's exact correspondences, on the object pixels a label keeps. Seed 5 without the occluder (the
    evaluation uses seed 0). Measured 2026-12-04, median px / share off by > 3 px: gap 1 0.29 / 0 %; gap 5 without
    the cycle check 1.45 / 6.1 %, with it (default) 1.43 / 5.2 %, plus the direct-flow check 1.20 / 2.7 %."""
    from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset
    from dense_descriptors_ros.synthetic.object_renderer import RendererUnavailable, correspondences

    try:
        seq = write_object_dataset(tmp_path / "drill", 5, 16, progress=False, object="drill", occlusion_passes=0)
    except RendererUnavailable as exc:
        pytest.skip(f"no headless OpenGL renderer to draw the drill: {exc}")
    h, w = 120, 160
    clip = load_clip(tmp_path / "drill" / "rgb", (h, w), flow_scale=FlowConfig().scale)
    assert clip.flow_scale == 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cache = str(tmp_path / "flow_cache")

    def errors(gap: int, **config: float) -> tuple[np.ndarray, int]:
        """Label errors (training px) on the object pixels with ground truth, and how many labels were kept."""
        labeler = FlowLabeler(FlowConfig(cache_dir=cache, **config))
        found, kept = [], 0
        for i in range(len(seq) - gap):
            label = labeler.label_chain(clip.flow_frames[i : i + gap + 1], clip.flow_scale)
            on_object = cv2.resize(seq.masks[i].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            use = on_object & label.valid
            pts = np.column_stack([xs[use], ys[use]])
            truth, visible = correspondences(seq, i, i + gap, 2 * pts + 0.5)
            found.append(np.linalg.norm(pts + label.flow[use] - (truth - 0.5) / 2, axis=1)[visible])
            kept += int(use.sum())
        return np.concatenate(found), kept

    consecutive, _ = errors(1)
    assert np.median(consecutive) < 0.4
    unfiltered, unfiltered_kept = errors(5, cycle_max_px=0.0)
    cycle, cycle_kept = errors(5)
    both, both_kept = errors(5, direct_max_px=1.0)
    assert np.median(cycle) < 1.7 and np.median(both) < 1.4
    share = {name: np.mean(e > 3.0) for name, e in (("none", unfiltered), ("cycle", cycle), ("both", both))}
    assert share["cycle"] < 0.95 * share["none"] and share["both"] < 0.6 * share["none"], share
    assert cycle_kept > 0.8 * unfiltered_kept and both_kept > 0.5 * unfiltered_kept


def test_cache_flows_computes_only_what_the_cache_lacks(tmp_path: Path) -> None:
    a, b, _ = _affine_pair(0.0, (1.0, 0.5))
    labeler = FlowLabeler(FlowConfig(cache_dir=str(tmp_path)))
    labeler.cache_flows(a, b)
    labeler.cache_flows(b, a)  # one file serves both orders: not read, not recomputed
    assert (labeler.cache_misses, labeler.cache_hits) == (1, 0)
    assert [p.suffixes for p in tmp_path.iterdir()] == [[".npz"]]  # no temporary left behind
    labeler.label(a, b)
    assert (labeler.cache_misses, labeler.cache_hits) == (1, 1)
