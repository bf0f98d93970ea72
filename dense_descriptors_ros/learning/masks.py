"""Mask providers: which pixels of a frame belong to the object the descriptors are trained on.

One small interface, ``MaskProvider.mask(index, frame) -> bool (H, W)``:
- ``FolderMaskProvider``: a folder of mask images, one per frame in sorted order (e.g. DAVIS annotations);
- ``MotionMaskProvider``: the dominant moving region, from flow that differs from the dominant (background) motion;
- ``FullMaskProvider``: every pixel (whole-scene descriptors, e.g. for SLAM).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from dense_descriptors_ros.io.frame_sources import image_files
from dense_descriptors_ros.learning.flow import FlowLabeler

MASK_KINDS = ("none", "folder", "motion")


class MaskProvider(ABC):
    """Object mask of frame ``index`` (the frame itself is passed for providers that look at pixels)."""

    @abstractmethod
    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        """bool (H, W), True on the object."""


class FullMaskProvider(MaskProvider):
    """All pixels are object: descriptors for the whole scene."""

    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        return np.ones(frame.shape[:2], bool)


class FolderMaskProvider(MaskProvider):
    """Masks from image files (any non-zero pixel is object), matched to frames by sorted order.

    ``indices`` maps the frame index to a file index when the frames were subsampled (stride). Masks of a
    different size than the frame are resized with nearest-neighbour interpolation.
    """

    def __init__(self, folder: str | Path, indices: Sequence[int] | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"mask folder not found: {self.folder}")
        self.files = image_files(self.folder)
        self.indices = list(indices) if indices is not None else None

    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        file_index = index
        if self.indices is not None:
            file_index = self.indices[index] if 0 <= index < len(self.indices) else -1
        if not 0 <= file_index < len(self.files):
            raise ValueError(f"{self.folder}: no mask for frame {index} (the folder has {len(self.files)} masks)")
        image = cv2.imread(str(self.files[file_index]), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{self.files[file_index]} could not be read as a mask image")
        if image.ndim == 3:
            image = image.max(axis=2)
        h, w = frame.shape[:2]
        if image.shape != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
        return image > 0


class MotionMaskProvider(MaskProvider):
    """The dominant moving region: pixels whose flow to a neighbour frame differs from the dominant motion.

    The dominant (background / camera) motion is a robust affine fit (RANSAC) to the flow; pixels more than
    ``threshold_px`` away from it form the candidate mask, which is cleaned with a morphological opening and
    reduced to its largest connected component. When fewer than ``min_fraction`` of the pixels move, the whole
    frame is returned (nothing moves independently: train on the scene).
    """

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        labeler: FlowLabeler,
        threshold_px: float = 1.0,
        min_fraction: float = 0.01,
    ) -> None:
        if len(frames) < 2:
            raise ValueError("MotionMaskProvider needs at least 2 frames")
        self.frames = frames
        self.labeler = labeler
        self.threshold_px = threshold_px
        self.min_fraction = min_fraction

    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        other = index + 1 if index + 1 < len(self.frames) else index - 1
        label = self.labeler.label(self.frames[index], self.frames[other])
        h, w = label.valid.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        source = np.stack([xs, ys], -1)
        target = label.targets()
        step = max(1, int(np.sqrt(h * w / 4000)))  # fit on a grid of about 4000 points
        src, dst = source[::step, ::step].reshape(-1, 2), target[::step, ::step].reshape(-1, 2)
        dominant, _ = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=self.threshold_px)
        if dominant is None:
            return np.ones((h, w), bool)
        predicted = source @ dominant[:, :2].T + dominant[:, 2]
        moving = (np.linalg.norm(target - predicted, axis=-1) > self.threshold_px).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(moving)
        if count < 2:
            return np.ones((h, w), bool)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        region = labels == largest
        if region.mean() < self.min_fraction:
            return np.ones((h, w), bool)
        return cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
