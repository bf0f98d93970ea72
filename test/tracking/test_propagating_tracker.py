"""Strategy propagate of the PointTracker: frame-to-frame matching anchored by a memory of appearances, on
synthetic sequences made here (synthetic/plane_video) where the reference strategy fails: an appearance that
changes slowly and a twin of the tracked point."""

from __future__ import annotations

import numpy as np
import torch

from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform
from dense_descriptors_ros.tracking.point_tracker import PointTracker
from dense_descriptors_ros.tracking.track_memory import new_memory, remember
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig


def _track(descriptors: list[np.ndarray], points: np.ndarray, strategy: str) -> dict[str, np.ndarray]:
    tracker = PointTracker(TrackerConfig(strategy=strategy))
    tracker.add_queries(descriptors[0], points)
    frames = [tracker.update(d) for d in descriptors[1:]]
    return {
        "positions": np.stack([points, *(f.positions for f in frames)]),
        "visible": np.stack([np.ones(len(points), bool), *(f.visible for f in frames)]),
        "redetected": np.stack([np.zeros(len(points), bool), *(f.redetected for f in frames)]),
    }


def test_propagation_follows_a_slowly_changing_appearance_the_fixed_reference_loses():
    """The plane's descriptors turn from one random field into another (up to 108 degrees between first and last
    frame) while it moves: each frame is close to the previous one, the last frames are unlike the first."""
    h = w = 96
    frames = 40
    transforms = np.array([similarity_transform(0.01 * t, 1.0, 0.5 * t, 0.3 * t, (48, 48)) for t in range(frames)])
    before, after = SyntheticSequence(transforms, h, w, seed=11), SyntheticSequence(transforms, h, w, seed=12)
    descriptors = []
    for t in range(frames):
        angle = 0.6 * np.pi * t / (frames - 1)
        mixed = np.cos(angle) * before.frame(t)[1] + np.sin(angle) * after.frame(t)[1]
        descriptors.append((mixed / np.linalg.norm(mixed, axis=-1, keepdims=True)).astype(np.float32))
    points = np.array([[x, y] for x in (25.0, 45.0, 65.0) for y in (25.0, 45.0, 65.0)], np.float32)
    truth = before.project(before.texture_points(points))
    results = {}
    for strategy in ("reference", "propagate"):
        run = _track(descriptors, points, strategy)
        error = np.linalg.norm(run["positions"] - truth, axis=-1)
        results[strategy] = run["visible"] & (error < 2.0)  # tracked, and at the point
    assert results["propagate"].mean() > 0.9
    assert results["propagate"][-10:].mean() > 0.85
    assert results["reference"][-10:].mean() < 0.1  # the creation descriptor no longer matches anything
    assert results["reference"].mean() < 0.4


def test_memory_does_not_jump_to_a_twin_while_the_point_is_hidden():
    """A copy of the point's neighbourhood stands 70 px to its right; an occluder hides the point for frames 10-17.
    The hidden point stays lost (the twin was seen with it at creation) and is found again where it comes out."""
    h, w, frames = 80, 128, 30
    transforms = np.array([similarity_transform(0.0, 1.0, 0.4 * t, 0.0, (w / 2, h / 2)) for t in range(frames)])
    hidden = np.array([[20, 20, 50, 50] if 10 <= t < 18 else [-100, -100, -90, -90] for t in range(frames)], float)
    seq = SyntheticSequence(transforms, h, w, occluder_boxes=hidden, seed=21)
    clear = SyntheticSequence(transforms, h, w, seed=21)
    point = np.array([[32.0, 36.0]], np.float32)
    truth = seq.project(seq.texture_points(point))[:, 0]
    twin_offset = np.array([70.0, 0.0])
    descriptors = []
    for t in range(frames):
        desc, original = seq.frame(t)[1], clear.frame(t)[1]
        x, y = np.round(truth[t]).astype(int)
        desc[y - 12 : y + 13, x + 58 : x + 83] = original[y - 12 : y + 13, x - 12 : x + 13]
        descriptors.append(desc)
    runs = {strategy: _track(descriptors, point, strategy) for strategy in ("reference", "propagate")}
    run = runs["propagate"]
    on_twin = np.linalg.norm(run["positions"][:, 0] - truth - twin_offset, axis=-1) < 4.0
    assert not (run["visible"][:, 0] & on_twin).any()
    assert not run["visible"][11:18, 0].any()
    error = np.linalg.norm(run["positions"][:, 0] - truth, axis=-1)
    assert run["visible"][18:, 0].all() and error[18:].max() < 1.0
    # The fixed reference, re-detected by the whole-image search alone, takes the twin while the point is hidden.
    ref = runs["reference"]
    assert (ref["visible"][:, 0] & (np.linalg.norm(ref["positions"][:, 0] - truth - twin_offset, axis=-1) < 4)).any()


def test_memory_keeps_the_creation_descriptor_and_a_bounded_ring_of_appearances():
    refs = torch.eye(3)[:2]  # two tracks, D = 3
    bank, valid, next_slot = new_memory(refs, size=3)
    assert valid.tolist() == [[True, False, False], [True, False, False]]
    for value in (1.0, 2.0, 3.0):
        remember(bank, valid, next_slot, torch.tensor([0]), torch.full((1, 3), value))
    # Slot 0 stays the creation descriptor; slots 1 and 2 hold the two newest appearances (1.0 was overwritten).
    assert torch.equal(bank[0, 0], refs[0])
    assert bank[0, 1:, 0].tolist() == [3.0, 2.0]
    assert valid[0].all() and valid[1].tolist() == [True, False, False]
    single = new_memory(refs, size=1)
    remember(*single, torch.tensor([0, 1]), torch.ones(2, 3))
    assert torch.equal(single[0][:, 0], refs)
