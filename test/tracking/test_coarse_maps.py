"""PointTracker on coarse descriptor maps (output stride > 1), and the stride-1 tracks of the tracker before it was
made fast (batched window reads, one smoothed block per frame)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform
from dense_descriptors_ros.synthetic.textures import FourierField
from dense_descriptors_ros.tracking.point_tracker import PointTracker
from dense_descriptors_ros.tracking.tracker_config import STRATEGIES, TrackerConfig

STRIDE = 4


def _shifted_field_map(field: FourierField, shift: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray:
    """(h / s, w / s, D) unit map of ``field`` moved by ``shift`` pixels, sampled at the cell centres of stride s."""
    h, w = size[0] // stride, size[1] // stride
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    centres = np.stack([xs, ys], -1) * stride + (stride - 1) / 2  # cell (i, j) is centred on this image pixel
    desc = field(centres - shift)
    return (desc / np.linalg.norm(desc, axis=-1, keepdims=True)).astype(np.float32)


def _shift_errors(strategy: str, stride: int) -> np.ndarray:
    """Pixel errors of 9 points tracked through 8 frames of a smooth field moving by a sub-pixel step per frame."""
    field = FourierField(32, 16.0, 80.0, seed=3)  # smooth at the map's scale: no wavelength below 4 cells
    size = (96, 128)
    step = np.array([1.35, -0.6])  # pixels per frame, not a multiple of the stride
    points = np.array([[x, y] for x in (30.0, 63.5, 97.25) for y in (32.0, 48.5, 70.0)], np.float32)
    tracker = PointTracker(TrackerConfig(strategy=strategy))
    tracker.add_queries(_shifted_field_map(field, 0 * step, size, stride), points, stride=stride)
    errors = []
    for t in range(1, 9):
        frame = tracker.update(_shifted_field_map(field, t * step, size, stride), stride=stride)
        assert frame.visible.all()
        errors.append(np.linalg.norm(frame.positions - (points + t * step), axis=1))
    return np.concatenate(errors)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_subpixel_shift_of_a_smooth_field_is_recovered_from_a_stride_4_map(strategy):
    coarse, full = _shift_errors(strategy, STRIDE), _shift_errors(strategy, 1)
    # A fraction of a pixel from a map of 4-pixel cells, as precise as the same field at every pixel (measured:
    # median 0.17 px, at most 0.43 px at both strides: the sub-pixel parabola's own bias).
    assert np.median(coarse) < 0.25 and coarse.max() < 0.5
    assert np.median(coarse) < np.median(full) + 0.03


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_coarse_map_tracks_like_its_full_resolution_upsampling(strategy):
    """Stride 4 reads the map where needed; the tracks are those on the map upsampled to the image (what
    DescriptorEngine.compute gives from the same network output), including occlusion and re-detection."""
    field = FourierField(32, 12.0, 60.0, seed=5)
    size = (80, 96)
    steps = [np.array([1.1 * t, 0.45 * t]) for t in range(8)] + [np.array([22.0, 9.0])]  # then a jump
    coarse = [_shifted_field_map(field, shift, size, STRIDE) for shift in steps]
    full = [
        F.normalize(F.interpolate(torch.from_numpy(c).permute(2, 0, 1)[None], size=size, mode="bilinear"), dim=1)[0]
        for c in coarse
    ]
    points = np.array([[20.0, 24.5], [47.25, 40.0], [70.0, 55.0], [33.0, 60.0]], np.float32)
    on_coarse, on_full = PointTracker(TrackerConfig(strategy=strategy)), PointTracker(TrackerConfig(strategy=strategy))
    on_coarse.add_queries(coarse[0], points, stride=STRIDE)
    on_full.add_queries(full[0], points)
    for c, f in zip(coarse[1:], full[1:], strict=True):
        a, b = on_coarse.update(c, stride=STRIDE), on_full.update(f)
        np.testing.assert_allclose(a.positions, b.positions, atol=2e-3)
        np.testing.assert_array_equal(a.visible, b.visible)
        np.testing.assert_array_equal(a.redetected, b.redetected)
    assert a.visible.all()


def test_automatic_queries_on_a_coarse_map_sit_on_cell_centres_inside_the_mask():
    field = FourierField(32, 12.0, 60.0, seed=1)
    coarse = _shifted_field_map(field, np.zeros(2), (64, 96), STRIDE)
    mask = np.zeros((64, 96), bool)
    mask[8:56, 40:90] = True
    tracker = PointTracker()
    tracker.add_automatic_queries(coarse, 12, mask, stride=STRIDE)
    points = tracker.frame().positions
    assert 6 <= len(points) <= 12
    assert np.allclose((points - (STRIDE - 1) / 2) % STRIDE, 0)  # cell centres, in image pixels
    assert mask[points[:, 1].round().astype(int), points[:, 0].round().astype(int)].all()
    with pytest.raises(ValueError, match="mask must have the image's size"):
        tracker.add_automatic_queries(coarse, 4, mask[:16, :24], stride=STRIDE)
    with pytest.raises(ValueError, match="output stride must be a positive integer"):
        tracker.update(coarse, stride=0)
    with pytest.raises(ValueError, match="outside the 96x64 image"):
        tracker.add_queries(coarse, np.array([[96.5, 10.0]], np.float32), stride=STRIDE)


# Tracks of 9 points through a rotating, scaling, moving plane with an occluder sweeping over it, after 11 frames,
# by the tracker as it was before the speed work (main at f7516bf): the stride-1 tracker must give the same.
BEFORE = {
    "reference": [
        [51.0428, 8.7960],
        [40.8375, 25.7002],
        [30.1519, 42.8326],
        [66.2668, 18.1464],
        [56.1608, 35.1163],
        [45.3783, 52.2317],
        [81.5000, 27.2104],
        [71.4305, 44.1171],
        [60.7823, 61.7451],
    ],
    "propagate": [
        [51.1461, 8.8715],
        [40.9492, 25.7779],
        [30.4920, 42.8940],
        [66.3417, 18.1029],
        [55.9832, 35.1274],
        [45.4379, 52.2037],
        [80.8618, 27.2378],
        [71.5152, 44.4803],
        [60.7553, 61.6581],
    ],
}
FRAMES_VISIBLE_BEFORE = {"reference": [9, 9, 9, 9, 9, 8, 7, 9, 9], "propagate": [10, 9, 9, 9, 9, 9, 9, 9, 9]}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stride_1_gives_the_tracks_of_the_tracker_before_it_was_made_fast(strategy):
    transforms = [similarity_transform(0.05 * t, 1.0 + 0.01 * t, 1.3 * t, -0.8 * t, (48, 48)) for t in range(12)]
    boxes = np.array([[60 - 6 * t, 0, 75 - 6 * t, 95] for t in range(12)])  # an occluder sweeping left
    seq = SyntheticSequence(np.array(transforms), 96, 96, occluder_boxes=boxes)
    points = np.array([[x, y] for x in (25.0, 41.5, 58.25) for y in (30.0, 47.75, 66.0)], np.float32)
    tracker = PointTracker(TrackerConfig(strategy=strategy))
    tracker.add_queries(seq.frame(0)[1], points, stride=1)
    visible = [tracker.update(seq.frame(t)[1]).visible for t in range(1, len(seq))]
    np.testing.assert_allclose(tracker.frame().positions, BEFORE[strategy], atol=1e-3)
    assert np.stack(visible).sum(0).tolist() == FRAMES_VISIBLE_BEFORE[strategy]
