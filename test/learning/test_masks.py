"""Mask providers: the moving object from flow, masks from a folder in frame order, the full mask."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.learning.flow import FlowLabeler
from dense_descriptors_ros.learning.masks import FolderMaskProvider, FullMaskProvider, MotionMaskProvider
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

H, W = 96, 128


def test_motion_mask_finds_the_moving_object() -> None:
    video = textured_object_video(num_frames=4, height=H, width=W, seed=2, max_step_px=3.0)
    provider = MotionMaskProvider(video.frames, FlowLabeler())
    mask = provider.mask(1, video.frames[1])
    truth = video.masks[1]
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.6
    assert FullMaskProvider().mask(0, video.frames[0]).all()


def test_folder_masks_follow_frame_order_and_resize(tmp_path: Path) -> None:
    for k in range(3):
        mask = np.zeros((48, 64), np.uint8)
        mask[: 10 * (k + 1)] = 255
        cv2.imwrite(str(tmp_path / f"{k:05d}.png"), mask)
    provider = FolderMaskProvider(tmp_path, indices=[0, 2])
    frame = np.zeros((96, 128, 3), np.uint8)
    second = provider.mask(1, frame)
    assert second.shape == (96, 128)
    assert second[:60].all() and not second[60:].any()
    with pytest.raises(ValueError, match="no mask for frame"):
        provider.mask(2, frame)
