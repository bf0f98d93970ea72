"""PointTracker on synthetic sequences with known motion, occlusion and oracle descriptors (synthetic/plane_video)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform
from dense_descriptors_ros.tracking.point_tracker import PointTracker
from dense_descriptors_ros.tracking.tracker_config import STRATEGIES, TrackerConfig

H, W = 96, 96
CENTRE = (W / 2, H / 2)


def _run(
    seq: SyntheticSequence, tracker: PointTracker, points: np.ndarray, descriptors: list[np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Track ``points`` of frame 0 through ``seq``; returns predicted and true positions/visibility (T, N, ...)."""
    descriptors = descriptors or [seq.frame(t)[1] for t in range(len(seq))]
    tracker.add_queries(descriptors[0], points)
    texture = seq.texture_points(points)
    positions, visible, redetected = [points.astype(np.float32)], [np.ones(len(points), bool)], [np.zeros(len(points))]
    for t in range(1, len(seq)):
        frame = tracker.update(descriptors[t])
        positions.append(frame.positions)
        visible.append(frame.visible)
        redetected.append(frame.redetected)
    return {
        "pred": np.stack(positions),
        "visible": np.stack(visible),
        "redetected": np.stack(redetected).astype(bool),
        "gt": seq.project(texture),
        "gt_visible": seq.visibility(texture),
        "clear": seq.visibility(texture, margin=3.0),  # visible and away from the occluder's edge
        "covered": ~seq.visibility(texture, margin=-3.0),  # well inside the occluder or outside the image
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tracks_rotation_scale_translation_to_subpixel_accuracy(strategy):
    frames = 16
    transforms = [similarity_transform(0.045 * t, 1.0 + 0.009 * t, 0.9 * t, -0.6 * t, CENTRE) for t in range(frames)]
    seq = SyntheticSequence(np.array(transforms), H, W)
    points = np.array([[x, y] for x in (30.0, 48.5, 66.0) for y in (30.0, 47.25, 66.0)])
    run = _run(seq, PointTracker(TrackerConfig(strategy=strategy)), points)
    error = np.linalg.norm(run["pred"] - run["gt"], axis=-1)
    assert run["gt_visible"].all()
    assert run["visible"].mean() > 0.97
    assert np.median(error) < 0.3
    assert error.max() < 1.5


def test_subpixel_refinement_beats_integer_matching():
    frames = 8
    transforms = [similarity_transform(0.0, 1.0, 0.37 * t, 0.61 * t, CENTRE) for t in range(frames)]
    seq = SyntheticSequence(np.array(transforms), H, W)
    points = np.array([[x, y] for x in (30.0, 50.0, 70.0) for y in (30.0, 50.0, 70.0)])
    descriptors = [seq.frame(t)[1] for t in range(frames)]
    errors = {}
    for method in ("none", "parabola", "softargmax"):
        run = _run(seq, PointTracker(TrackerConfig(subpixel=method)), points, descriptors)
        errors[method] = np.linalg.norm(run["pred"] - run["gt"], axis=-1)[1:].mean()
    assert errors["parabola"] < 0.6 * errors["none"]
    assert errors["softargmax"] < errors["none"]
    assert errors["parabola"] < 0.2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_occlusion_is_reported_and_points_reacquired_after_it(strategy):
    frames = 32
    transforms = [similarity_transform(0.01 * t, 1.0, 0.3 * t, 0.0, CENTRE) for t in range(frames)]
    # A 30 px square with its own texture sweeps left to right across the middle band.
    boxes = np.array([[-40.0 + 5.0 * t, 32.0, -10.0 + 5.0 * t, 62.0] for t in range(frames)])
    seq = SyntheticSequence(np.array(transforms), H, W, occluder_boxes=boxes)
    points = np.array([[x, y] for x in (20.0, 45.0, 70.0) for y in (40.0, 54.0)] + [[45.0, 15.0], [45.0, 80.0]])
    run = _run(seq, PointTracker(TrackerConfig(strategy=strategy)), points)
    covered, clear = run["covered"], run["clear"]
    assert covered[:, :6].any(axis=0).all()  # every middle-band point gets occluded
    assert not run["visible"][covered].any()  # never reported visible while hidden
    assert run["visible"][clear].mean() > 0.95
    error = np.linalg.norm(run["pred"] - run["gt"], axis=-1)
    assert np.percentile(error[clear & run["visible"]], 99) < 1.0
    # After the occluder has passed every point is found again at its true position.
    assert run["visible"][-1, :6].all()
    assert error[-1, :6].max() < 1.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_point_moving_behind_a_static_occluder_is_redetected_where_it_comes_out(strategy):
    frames = 28
    transforms = [similarity_transform(0.0, 1.0, 2.5 * t, 0.0, CENTRE) for t in range(frames)]
    boxes = np.tile([40.0, 30.0, 70.0, 62.0], (frames, 1))  # the points pass 30 px behind it, > the search radius
    seq = SyntheticSequence(np.array(transforms), H, W, occluder_boxes=boxes)
    points = np.array([[22.0, 40.0], [19.0, 52.0]])
    descriptors = [seq.frame(t)[1] for t in range(frames)]
    run = _run(seq, PointTracker(TrackerConfig(strategy=strategy)), points, descriptors)
    assert not run["visible"][run["covered"]].any()
    assert run["redetected"].any(axis=0).all()
    error = np.linalg.norm(run["pred"] - run["gt"], axis=-1)
    assert run["visible"][-4:].all() and error[-4:].max() < 1.0
    # Without global re-detection the local window around the stale prediction never finds them again.
    stale = _run(seq, PointTracker(TrackerConfig(strategy=strategy, redetect=False)), points, descriptors)
    assert not stale["visible"][-4:].any()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_large_jump_is_recovered_by_global_redetection(strategy):
    frames = 12
    # At frame 6 the scene jumps by 35 px (far outside the 12 px search window) and turns by 20 degrees.
    transforms = [
        similarity_transform(0.35 if t >= 6 else 0.0, 1.0, 0.5 * t + (35.0 if t >= 6 else 0.0), 0.0, CENTRE)
        for t in range(frames)
    ]
    seq = SyntheticSequence(np.array(transforms), H, W)
    points = np.array([[20.0, 30.0], [25.0, 60.0], [40.0, 45.0], [35.0, 75.0]])
    run = _run(seq, PointTracker(TrackerConfig(strategy=strategy, search_radius=12)), points)
    error = np.linalg.norm(run["pred"] - run["gt"], axis=-1)
    assert run["redetected"][6].all()
    assert run["visible"][6:].all()
    assert error[6:].max() < 1.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lost_track_stays_invisible_without_redetection(strategy):
    frames = 10
    shifts = [0.5 * t + (35.0 if t >= 5 else 0.0) for t in range(frames)]
    transforms = [similarity_transform(0.0, 1.0, shift, 0.0, CENTRE) for shift in shifts]
    seq = SyntheticSequence(np.array(transforms), H, W)
    run = _run(
        seq, PointTracker(TrackerConfig(strategy=strategy, redetect=False)), np.array([[20.0, 30.0], [30.0, 60.0]])
    )
    assert run["visible"][:5].all()
    assert not run["visible"][5:].any()


def test_ids_are_stable_when_queries_are_added_removed_and_reset():
    seq = SyntheticSequence(np.array([similarity_transform(0.0, 1.0, t, 0.0, CENTRE) for t in range(6)]), H, W)
    tracker = PointTracker()
    desc = [seq.frame(t)[1] for t in range(6)]
    first = tracker.add_queries(desc[0], np.array([[30.0, 30.0], [60.0, 40.0]]))
    assert first.tolist() == [0, 1]
    tracker.update(desc[1])
    later = tracker.add_queries(desc[1], np.array([[40.0, 60.0]]))
    assert later.tolist() == [2]
    frame = tracker.update(desc[2])
    assert frame.ids.tolist() == [0, 1, 2]
    assert frame.ages.tolist() == [2, 2, 1]
    # The late query is tracked in its own reference frame: it moved by one pixel per frame since frame 1.
    np.testing.assert_allclose(frame.positions[2], [41.0, 60.0], atol=0.3)
    tracker.remove([1, 99])
    frame = tracker.update(desc[3])
    assert frame.ids.tolist() == [0, 2]
    np.testing.assert_allclose(frame.positions, [[33.0, 30.0], [42.0, 60.0]], atol=0.3)
    assert tracker.add_queries(desc[3], np.array([[50.0, 50.0]])).tolist() == [3]
    tracker.reset()
    assert tracker.num_tracks == 0
    assert len(tracker.update(desc[4])) == 0
    assert tracker.add_queries(desc[4], np.array([[50.0, 50.0]])).tolist() == [0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_torch_input_gives_the_same_tracks_as_numpy(strategy):
    seq = SyntheticSequence(np.array([similarity_transform(0.02 * t, 1.0, t, 0.5 * t, CENTRE) for t in range(5)]), H, W)
    points = np.array([[30.0, 30.0], [60.0, 50.0], [45.0, 70.0]])
    a, b = PointTracker(TrackerConfig(strategy=strategy)), PointTracker(TrackerConfig(strategy=strategy))
    a.add_queries(seq.frame(0)[1], points)
    b.add_queries(torch.from_numpy(seq.frame(0)[1]).permute(2, 0, 1)[None], points)
    for t in range(1, 5):
        desc = seq.frame(t)[1]
        fa, fb = a.update(desc), b.update(torch.from_numpy(desc).permute(2, 0, 1).contiguous())
        np.testing.assert_allclose(fa.positions, fb.positions, atol=1e-4)
        np.testing.assert_array_equal(fa.visible, fb.visible)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_descriptors_that_require_grad_track_like_plain_ones(strategy):
    """A network's output passed on without torch.no_grad: the same tracks, and no autograd graph kept in the state."""
    seq = SyntheticSequence(np.array([similarity_transform(0.02 * t, 1.0, t, 0.5 * t, CENTRE) for t in range(5)]), H, W)
    points = np.array([[30.0, 30.0], [60.0, 50.0], [45.0, 70.0]])
    plain, grad = PointTracker(TrackerConfig(strategy=strategy)), PointTracker(TrackerConfig(strategy=strategy))

    def with_grad(desc: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(desc).permute(2, 0, 1).requires_grad_()

    plain.add_queries(seq.frame(0)[1], points)
    grad.add_queries(with_grad(seq.frame(0)[1]), points)
    for t in range(1, 5):
        desc = seq.frame(t)[1]
        fa, fb = plain.update(desc), grad.update(with_grad(desc))
        np.testing.assert_allclose(fa.positions, fb.positions, atol=1e-5)
        np.testing.assert_array_equal(fa.visible, fb.visible)
    assert not any(value.requires_grad for value in vars(grad).values() if isinstance(value, torch.Tensor))


@pytest.mark.cuda
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_gpu_tracks_match_cpu_tracks(strategy):
    seq = SyntheticSequence(np.array([similarity_transform(0.05 * t, 1.0, 3 * t, t, CENTRE) for t in range(6)]), H, W)
    points = np.array([[30.0, 30.0], [60.0, 50.0], [45.0, 70.0]])
    cpu, gpu = PointTracker(TrackerConfig(strategy=strategy)), PointTracker(TrackerConfig(strategy=strategy))
    cpu.add_queries(seq.frame(0)[1], points)
    gpu.add_queries(torch.from_numpy(seq.frame(0)[1]).permute(2, 0, 1).cuda(), points)
    for t in range(1, 6):
        desc = seq.frame(t)[1]
        fc, fg = cpu.update(desc), gpu.update(torch.from_numpy(desc).permute(2, 0, 1).cuda())
        np.testing.assert_allclose(fc.positions, fg.positions, atol=1e-3)
        np.testing.assert_array_equal(fc.visible, fg.visible)


def test_auto_points_seed_the_tracker_on_the_first_frame_and_after_reset():
    seq = SyntheticSequence(np.array([similarity_transform(0.0, 1.0, t, 0.0, CENTRE) for t in range(3)]), H, W)
    tracker = PointTracker(TrackerConfig(auto_points=10))
    frame = tracker.update(seq.frame(0)[1])
    assert len(frame) == 10 and frame.visible.all()
    frame = tracker.update(seq.frame(1)[1])
    assert frame.ids.tolist() == list(range(10))
    tracker.reset()
    assert len(tracker.update(seq.frame(2)[1])) == 10


def test_bad_input_raises_clear_errors():
    _, desc = SyntheticSequence(np.array([similarity_transform(0.0, 1.0, 0.0, 0.0, CENTRE)]), H, W).frame(0)
    tracker = PointTracker()
    with pytest.raises(ValueError, match="outside"):
        tracker.add_queries(desc, np.array([[W + 5.0, 10.0]]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        tracker.add_queries(desc, np.array([1.0, 2.0, 3.0]))
    tracker.add_queries(desc, np.array([[30.0, 30.0]]))
    broken = desc.copy()
    broken[5, 7, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tracker.update(broken)
    with pytest.raises(ValueError, match=r"\(H, W, D\)"):
        tracker.update(desc[..., 0])
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        tracker.update(torch.zeros(2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="float"):
        tracker.update(np.zeros((H, W, 32), np.uint8))
    with pytest.raises(ValueError, match="dimension changed"):
        tracker.update(desc[..., :16])
    with pytest.raises(ValueError, match="mask"):
        tracker.add_automatic_queries(desc, 4, mask=np.ones((10, 10), bool))
    # The tracker still works after the rejected frames.
    assert tracker.update(desc).visible.all()


def test_config_is_validated_through_the_config_system():
    cfg = from_mapping(TrackerConfig, {"search_radius": 20, "subpixel": "softargmax"})
    assert cfg.search_radius == 20
    with pytest.raises(ConfigError, match="max_ratio"):
        from_mapping(TrackerConfig, {"max_ratio": 1.5})
    with pytest.raises(ConfigError, match="subpixel"):
        from_mapping(TrackerConfig, {"subpixel": "cubic"})
    with pytest.raises(ConfigError, match="odd"):
        TrackerConfig(patch_size=4)


def _unit_noise(seed: int, like: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=like.shape).astype(np.float32)
    return noise / np.linalg.norm(noise, axis=-1, keepdims=True)


def test_tracks_lost_for_longer_than_max_lost_frames_are_dropped():
    seq = SyntheticSequence(np.array([similarity_transform(0.0, 1.0, 0.0, 0.0, CENTRE)] * 2), H, W)
    scene = seq.frame(0)[1]
    tracker = PointTracker(TrackerConfig(max_lost_frames=3))
    tracker.add_queries(scene, np.array([[30.0, 30.0], [60.0, 60.0]], np.float32))
    for t in range(3):  # the scene is gone: both tracks lost, still kept for max_lost_frames frames
        frame = tracker.update(_unit_noise(t, scene))
        assert list(frame.ids) == [0, 1] and not frame.visible.any()
    assert len(tracker.update(_unit_noise(3, scene))) == 0
    tracker.add_queries(scene, np.array([[40.0, 40.0]], np.float32))
    frame = tracker.update(scene)
    assert list(frame.ids) == [2] and frame.visible.all()


def test_adding_beyond_max_tracks_drops_the_longest_lost_then_the_oldest():
    seq = SyntheticSequence(np.array([similarity_transform(0.0, 1.0, 0.0, 0.0, CENTRE)] * 2), H, W)
    scene = seq.frame(0)[1]
    tracker = PointTracker(TrackerConfig(max_tracks=3, max_lost_frames=0))  # 0: lost tracks are kept
    for t, point in enumerate(([30.0, 30.0], [60.0, 60.0])):  # ids 0 and 1, each followed by a frame without them
        tracker.add_queries(scene, np.array([point], np.float32))
        tracker.update(_unit_noise(t, scene))
    tracker.add_queries(scene, np.array([[40.0, 40.0]], np.float32))  # id 2: three tracks, 0 lost longest
    tracker.add_queries(scene, np.array([[50.0, 50.0]], np.float32))  # id 3: one too many
    assert list(tracker.frame().ids) == [1, 2, 3]
    assert tracker.update(scene).visible.all()
    tracker.add_queries(scene, np.array([[65.0, 35.0]], np.float32))  # all visible: the oldest goes
    assert list(tracker.frame().ids) == [2, 3, 4]
