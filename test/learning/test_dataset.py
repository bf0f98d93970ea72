"""Training pairs: train and test halves kept apart, chained gaps, flow labels computed at twice the size and the
fallback when the frames are too small for the asked flow scale."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.learning.dataset import PairDataset, VideoClip, flow_factor, load_clip, split_pairs
from dense_descriptors_ros.learning.flow import FlowConfig, FlowLabeler
from dense_descriptors_ros.learning.masks import FullMaskProvider
from dense_descriptors_ros.learning.sampling import PairSampler
from dense_descriptors_ros.learning.trainer import TrainConfig
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video
from dense_descriptors_ros.synthetic.textures import smooth_texture

H, W = 96, 128


def test_split_keeps_train_and_test_halves_apart() -> None:
    assert split_pairs(10, 1, "train") == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert split_pairs(10, 2, "test") == [(5, 7), (6, 8), (7, 9)]
    with pytest.raises(ValueError, match="no test pairs with gaps \\[3\\]"):
        PairDataset(
            [VideoClip("short", [np.zeros((8, 8, 3), np.uint8)] * 4, FullMaskProvider())], None, None, "test", gap=3
        )


def test_chained_gaps_give_wide_baseline_pairs_inside_each_half() -> None:
    config = from_mapping(TrainConfig, {"flow": {"chain": 3, "chain_min": 1}})
    assert config.flow.gaps == (1, 2, 3)
    assert from_mapping(TrainConfig, {"flow": {"chain": 2}}).flow.gaps == (2,)
    clip = VideoClip("clip", [np.zeros((8, 8, 3), np.uint8)] * 10, FullMaskProvider())
    pairs = PairDataset([clip], None, None, "train", gap=config.flow.gaps).pairs
    assert sorted((j - i) for _, i, j in pairs) == [1, 1, 1, 1, 2, 2, 2, 3, 3]
    assert all(j < 5 for _, _, j in pairs)  # never across into the held-out half
    with pytest.raises(ConfigError, match="chain_min"):
        from_mapping(TrainConfig, {"flow": {"chain": 2, "chain_min": 3}})


def test_flow_at_twice_the_size_gives_finer_labels(tmp_path: Path) -> None:
    """flow.scale 2: the dataset computes flow on the frames at twice the training size and shrinks the label,
    which follows the true motion more closely than flow computed on the small frames."""
    video = textured_object_video(num_frames=6, height=2 * H, width=2 * W, seed=4, max_step_px=5.0)
    for k, frame in enumerate(video.frames):
        cv2.imwrite(str(tmp_path / f"{k:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    labeler = FlowLabeler()
    errors = {}
    for scale in (1, 2):
        clip = load_clip(tmp_path, (H, W), labeler=labeler, flow_scale=scale)
        assert clip.flow_scale == scale and clip.frames[0].shape == (H, W, 3)
        dataset = PairDataset([clip], labeler, PairSampler(), gap=2)
        label = dataset.label(0)
        assert label.flow.shape == (H, W, 2)
        _, i, j = dataset.pairs[0]
        inner = cv2.erode(video.masks[i].astype(np.uint8), np.ones((9, 9), np.uint8))[1::2, 1::2].astype(bool)
        ys, xs = np.nonzero(inner & label.valid)
        small = np.column_stack([xs, ys]).astype(np.float64)
        truth = (video.correspondences(i, j, 2 * small + 0.5) - 0.5) / 2
        errors[scale] = np.median(np.linalg.norm(label.flow[ys, xs] + small - truth, axis=1))
    assert errors[2] < 0.8 * errors[1], errors


def test_flow_scale_falls_back_to_the_largest_factor_the_frames_allow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert FlowConfig().scale == 2
    assert flow_factor((240, 320), (120, 160), 2) == 2
    assert flow_factor((1080, 1920), (120, 160), 2) == 2  # never more than asked
    assert flow_factor((360, 640), (120, 160), 4) == 3  # the height allows 3
    assert flow_factor((200, 640), (120, 160), 4) == 1
    assert flow_factor((60, 80), (120, 160), 2) == 1  # smaller than the training size
    texture = smooth_texture(3 * 48, 3 * 64, np.random.default_rng(7))
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k:06d}.png"), np.roll(texture, k, axis=1))
    with caplog.at_level("INFO", logger="dense_descriptors_ros.learning.dataset"):
        clip = load_clip(tmp_path, (48, 64), flow_scale=4)
    assert clip.flow_scale == 3 and clip.flow_frames[0].shape == (144, 192, 3) and len(clip.flow_frames) == 4
    notes = [r.getMessage() for r in caplog.records if "allow flow" in r.getMessage()]
    assert len(notes) == 1 and "192x144 frames allow flow at 3x" in notes[0] and "flow.scale 4" in notes[0]
    caplog.clear()
    with caplog.at_level("INFO", logger="dense_descriptors_ros.learning.dataset"):
        assert load_clip(tmp_path, (48, 64), flow_scale=2).flow_scale == 2
        assert load_clip(tmp_path, (48, 64), flow_scale=1).flow_frames is None
    assert not [r for r in caplog.records if "allow flow" in r.getMessage()]
