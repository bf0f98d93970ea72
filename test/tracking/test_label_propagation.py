"""Label propagation (CRW protocol) on synthetic sequences with oracle descriptors (synthetic/plane_video)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_descriptors_ros.metrics.segmentation import region_jaccard
from dense_descriptors_ros.synthetic.plane_video import SyntheticSequence, similarity_transform
from dense_descriptors_ros.tracking.label_propagation import LabelPropagator, PropagationConfig, propagate_labels

H, W, FRAMES = 96, 128, 10


def _moving_blobs() -> tuple[SyntheticSequence, list[np.ndarray]]:
    """A translating, slowly turning plane and the label maps of two discs painted on it (labels 1 and 2)."""
    transforms = [similarity_transform(0.01 * t, 1.0, 3.0 * t, 1.5 * t, (W / 2, H / 2)) for t in range(FRAMES)]
    seq = SyntheticSequence(np.array(transforms), H, W)
    centres = seq.project(np.array([[40.0, 40.0], [85.0, 55.0]]))
    ys, xs = np.mgrid[0:H, 0:W]
    labels = []
    for t in range(FRAMES):
        label = np.zeros((H, W), np.int64)
        for index, (cx, cy) in enumerate(centres[t], start=1):
            label[(xs - cx) ** 2 + (ys - cy) ** 2 < 16.0**2] = index
        labels.append(label)
    return seq, labels


def test_translated_blobs_are_propagated_with_high_iou():
    seq, labels = _moving_blobs()
    # The test images are tiny, so pool by 4 instead of CRW's 8 (a 16 px disc would be 2 cells across).
    out = propagate_labels((seq.frame(t)[1] for t in range(FRAMES)), labels[0], PropagationConfig(downsample=4))
    assert len(out) == FRAMES
    np.testing.assert_array_equal(out[0], labels[0])
    for t in range(1, FRAMES):
        assert out[t].shape == (H, W) and out[t].dtype == np.int32
        for label in (1, 2):
            assert region_jaccard(out[t] == label, labels[t] == label) > 0.8, (t, label)


def test_crw_defaults_and_radius_limit():
    seq, labels = _moving_blobs()
    descriptors = [seq.frame(t)[1] for t in range(4)]
    config = PropagationConfig()
    assert (config.topk, config.radius, config.temperature, config.context_frames, config.downsample) == (
        10,
        12.0,
        0.05,
        20,
        8,
    )
    # CRW settings at stride 8 still find the blobs (coarser boundaries on these tiny frames).
    out = propagate_labels(descriptors, labels[0], config)
    assert region_jaccard(out[3] == 1, labels[3] == 1) > 0.6
    # With no recent context the labels come only from frame 0, matched over the whole image.
    propagator = LabelPropagator(PropagationConfig(context_frames=0, downsample=4))
    propagator.start(torch.from_numpy(descriptors[0]).permute(2, 0, 1), labels[0])
    assert region_jaccard(propagator.step(descriptors[3]) == 2, labels[3] == 2) > 0.8


def test_bad_input_raises_clear_errors():
    seq, labels = _moving_blobs()
    desc = seq.frame(0)[1]
    with pytest.raises(ValueError, match="at least one"):
        propagate_labels([], labels[0])
    with pytest.raises(ValueError, match="labels must be"):
        propagate_labels([desc], labels[0][:50])
    with pytest.raises(ValueError, match="integer"):
        propagate_labels([desc], labels[0].astype(np.float32))
    propagator = LabelPropagator()
    with pytest.raises(RuntimeError, match="start"):
        propagator.step(desc)
    propagator.start(desc, labels[0])
    with pytest.raises(ValueError, match="frame size"):
        propagator.step(desc[:64])
    broken = desc.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        propagator.step(broken)
