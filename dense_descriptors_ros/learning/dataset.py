"""Training pairs from videos: frame source -> flow labels -> masks -> pair sampling -> augmentation.

Each clip is split like papers/000 section 4: the first half of its frames trains, the second half is held out.
A pair is (frame i, frame i + gap) inside one half, for one or several gaps; its flow label (chained over the gap)
is cached by the ``FlowLabeler``, or, for a clip with depth and poses (``labels: geometry``), computed from them
(learning/geometry_labels.py). Sampling is seeded by (seed, epoch, pair index), so a run is reproducible and
every epoch sees fresh samples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dense_descriptors_ros.io.frame_sources import open_frame_source
from dense_descriptors_ros.learning.augment import PairAugmentation
from dense_descriptors_ros.learning.flow import FlowLabel, FlowLabeler
from dense_descriptors_ros.learning.frame_store import input_key, load_stored, store_frames
from dense_descriptors_ros.learning.geometry_labels import LABEL_SOURCES, FrameGeometry, load_frame_geometry
from dense_descriptors_ros.learning.masks import (
    MASK_KINDS,
    FolderMaskProvider,
    FullMaskProvider,
    MaskProvider,
    MotionMaskProvider,
)
from dense_descriptors_ros.learning.sampling import PairSampler
from dense_descriptors_ros.model.engine import image_to_tensor

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


@dataclass
class VideoClip:
    """The frames of one video (uint8 RGB, all of one size: a list, or an (N, H, W, 3) array such as the memory
    map of a frame store) and where its object is."""

    name: str  # the input it was read from
    frames: Sequence[np.ndarray]
    masks: MaskProvider
    flow_frames: Sequence[np.ndarray] | None = None  # the same frames at an integer multiple of the size, for flow
    geometry: FrameGeometry | None = None  # depth and poses of the frames: labels from them instead of flow

    @property
    def flow_scale(self) -> int:
        return self.flow_frames[0].shape[0] // self.frames[0].shape[0] if self.flow_frames is not None else 1


def resize_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` at (height, width); area interpolation when shrinking."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def flow_factor(frame_size: tuple[int, int], image_size: tuple[int, int], scale: int) -> int:
    """The largest whole factor up to ``scale`` by which (height, width) ``frame_size`` frames cover the training
    ``image_size`` without upsampling (at least 1): flow on upsampled frames would be no finer."""
    fits = min(frame_size[0] // image_size[0], frame_size[1] // image_size[1])
    return max(1, min(scale, fits))


def _read_frames(
    path: str | Path, image_size: tuple[int, int], flow_scale: int, **frame_options: object
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(frame at ``image_size``, frame at the flow size or None) for each selected frame of ``path``, streamed."""
    height, width = image_size
    factor = flow_scale
    for k, (_, rgb) in enumerate(open_frame_source(path, **frame_options)):
        if k == 0:
            factor = flow_factor(rgb.shape[:2], image_size, flow_scale)
            if factor < flow_scale:
                size = f"{rgb.shape[1]}x{rgb.shape[0]}"
                log.info(
                    "%s: %s frames allow flow at %dx the training size, not flow.scale %d",
                    path,
                    size,
                    factor,
                    flow_scale,
                )
        flow_frame = resize_frame(rgb, factor * height, factor * width) if factor > 1 else None
        yield resize_frame(rgb, height, width), flow_frame


def load_clip(
    path: str | Path,
    image_size: tuple[int, int],
    mask_kind: str = "none",
    mask_folder: str | Path | None = None,
    labeler: FlowLabeler | None = None,
    stride: int = 1,
    flow_scale: int = 1,
    frame_store: str | Path | None = None,
    labels: str = "flow",
    **frame_options: object,
) -> VideoClip:
    """Read a video / image folder / rosbag2 at ``image_size`` (height, width) with the chosen mask provider.

    ``frame_options`` go to ``open_frame_source`` (start_time, end_time, max_frames, topic, fps). Folder masks
    are matched to the frames by order, taking the stride into account. With ``flow_scale`` > 1 the clip also
    keeps every frame at that multiple of ``image_size``, where the flow labels are computed; frames too small
    for it use the largest whole factor they allow (``flow_factor``). With a ``frame_store`` folder the frames are
    streamed into it once (learning/frame_store.py) and the clip reads them from there, instead of holding them.
    With ``labels="geometry"`` the clip also carries the depth and poses of its frames (``load_frame_geometry``,
    matched by order like folder masks) and its labels come from them.
    """
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {list(LABEL_SOURCES)}, got {labels!r}")
    if labels == "geometry" and {"start_time", "end_time"} & frame_options.keys():
        raise ValueError("labels: geometry matches frames to their depth and poses by order: no start_time / end_time")
    geometry = load_frame_geometry(path) if labels == "geometry" else None
    if geometry is not None:
        flow_scale = 1  # no flow to compute
    frame_options = {"stride": stride, **frame_options}
    read = _read_frames(path, image_size, flow_scale, **frame_options)
    if frame_store is None:
        pairs = list(read)
        frames, flow_frames = [a for a, _ in pairs], [b for _, b in pairs if b is not None] or None
    else:
        key = input_key(path, image_size=image_size, flow_scale=flow_scale, **frame_options)
        frames, flow_frames = load_stored(Path(frame_store), key) or store_frames(Path(frame_store), key, read)
    height, width = image_size
    if len(frames) < 4:
        raise ValueError(f"{path}: {len(frames)} frame(s) selected; training needs at least 4 (2 per split)")
    masks: MaskProvider
    if mask_kind == "none":
        masks = FullMaskProvider()
    elif mask_kind == "folder":
        if mask_folder is None:
            raise ValueError("mask kind 'folder' needs a mask folder (--masks DIR)")
        masks = FolderMaskProvider(mask_folder, indices=range(0, stride * len(frames), stride))
    elif mask_kind == "motion":
        masks = MotionMaskProvider(frames, labeler or FlowLabeler())
    else:
        raise ValueError(f"mask kind must be one of {list(MASK_KINDS)}, got {mask_kind!r}")
    if geometry is not None:
        geometry = geometry.select(range(0, stride * len(frames), stride))
    log.info("%s: %d frames at %dx%d, masks: %s, labels: %s", path, len(frames), width, height, mask_kind, labels)
    return VideoClip(str(path), frames, masks, flow_frames, geometry)


def split_pairs(num_frames: int, gap: int, split: str) -> list[tuple[int, int]]:
    """(i, i + gap) frame pairs inside the first (train) or second (test) half of a clip."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    half = num_frames // 2
    lo, hi = (0, half) if split == "train" else (half, num_frames)
    return [(i, i + gap) for i in range(lo, hi - gap)]


class PairDataset(Dataset):
    """Image pairs with sampled correspondences, as tensors ready for ``PixelwiseContrastiveLoss``."""

    def __init__(
        self,
        clips: Sequence[VideoClip],
        labeler: FlowLabeler,
        sampler: PairSampler,
        split: str = "train",
        augmentation: PairAugmentation | None = None,
        gap: int | Sequence[int] = 1,
        seed: int = 0,
    ) -> None:
        self.clips = list(clips)
        self.labeler = labeler
        self.sampler = sampler
        self.split = split
        self.augmentation = augmentation
        self.gaps = (gap,) if isinstance(gap, int) else tuple(gap)
        self.seed = seed
        self.epoch = 0
        self.pairs = [
            (c, i, j)
            for g in self.gaps
            for c, clip in enumerate(self.clips)
            for i, j in split_pairs(len(clip.frames), g, split)
        ]
        if not self.pairs:
            sizes = [len(c.frames) for c in self.clips]
            gaps = list(self.gaps)
            raise ValueError(f"no {split} pairs with gaps {gaps} in clips of {sizes} frames; use more frames")
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """New samples and augmentations every epoch (flow labels stay cached)."""
        self.epoch = epoch

    def mask(self, clip_index: int, frame_index: int) -> np.ndarray:
        key = (clip_index, frame_index)
        if key not in self._masks:
            clip = self.clips[clip_index]
            self._masks[key] = clip.masks.mask(frame_index, clip.frames[frame_index])
        return self._masks[key]

    def label(self, index: int) -> FlowLabel:
        """The label of pair ``index`` at the training size: from the clip's depth and poses when it has them, else
        flow (chained over the gap when gap > 1)."""
        c, i, j = self.pairs[index]
        clip = self.clips[c]
        if clip.geometry is not None:
            return clip.geometry.label(i, j, clip.frames[0].shape[:2])
        frames = clip.flow_frames if clip.flow_frames is not None else clip.frames
        return self.labeler.label_chain(frames[i : j + 1], clip.flow_scale)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c, i, j = self.pairs[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image_a, image_b = self.clips[c].frames[i], self.clips[c].frames[j]
        mask_a, mask_b = self.mask(c, i), self.mask(c, j)
        samples = self.sampler.sample(self.label(index), mask_a, mask_b, rng)
        if self.augmentation is not None:
            image_a, image_b, samples = self.augmentation(image_a, image_b, samples, rng, (mask_a, mask_b))
        return {
            "image_a": image_to_tensor(image_a),
            "image_b": image_to_tensor(image_b),
            "matches_a": torch.from_numpy(samples.matches_a),
            "matches_b": torch.from_numpy(samples.matches_b),
            "match_valid": torch.from_numpy(samples.match_valid),
            "non_matches_b": torch.from_numpy(samples.non_matches_b),
            "non_match_valid": torch.from_numpy(samples.non_match_valid),
            "index": torch.tensor(index),
        }
