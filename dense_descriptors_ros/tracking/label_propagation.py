"""Mask / label propagation through a video by descriptor affinity (the CRW protocol used by papers/002 and 004).

Every frame's labels are predicted from context frames: the first frame with its given labels, matched over the
whole image, plus the ``context_frames`` most recent frames with their predicted soft labels, matched only within
``radius`` feature cells. Each target cell takes the ``topk`` most similar context cells jointly over all context
frames, weights them by a softmax of cosine similarity / ``temperature`` and averages their soft labels. All of it
runs on descriptor maps average-pooled by ``downsample`` (CRW: stride 8); predictions are upsampled bilinearly to
the image and arg-maxed. Defaults are CRW's DAVIS settings (topk 10, radius 12, temperature 0.05, 20 frames).

One difference to CRW's script: CRW front-pads the video with copies of the first frame, so early frames see
duplicates of frame 0 inside the radius; here the context simply holds fewer frames at the start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dense_descriptors_ros.features.descriptor_image import as_descriptor_tensor


@dataclass
class PropagationConfig:
    topk: int = field(
        default=10, metadata={"help": "context cells each target cell takes labels from", "range": (1, 1000)}
    )
    radius: float = field(
        default=12.0,
        metadata={
            "help": "local window of the recent context frames, in feature cells (strict <)",
            "range": (0.5, 1e4),
        },
    )
    temperature: float = field(
        default=0.05, metadata={"help": "softmax temperature on cosine similarity", "range": (1e-4, 10.0)}
    )
    context_frames: int = field(
        default=20,
        metadata={"help": "recent frames (with predicted labels) besides the first frame", "range": (0, 100)},
    )
    downsample: int = field(
        default=8,
        metadata={"help": "descriptor maps are average-pooled by this factor (CRW stride 8)", "range": (1, 64)},
    )
    chunk_cells: int = field(
        default=2048, metadata={"help": "target cells per affinity block (bounds memory)", "range": (64, 1 << 20)}
    )


def _pooled(descriptors: np.ndarray | torch.Tensor, factor: int, device: torch.device | None) -> torch.Tensor:
    chw = as_descriptor_tensor(descriptors)
    if device is not None:
        chw = chw.to(device)
    if factor > 1:
        chw = F.avg_pool2d(chw[None], factor, stride=factor, ceil_mode=True)[0]
    return F.normalize(chw, dim=0)


class LabelPropagator:
    """Streaming label propagation: ``start`` with the first frame's labels, then ``step`` for every later frame."""

    def __init__(self, config: PropagationConfig | None = None, device: str | torch.device | None = None) -> None:
        self.config = config or PropagationConfig()
        self.device = torch.device(device) if device is not None else None
        self._first: tuple[torch.Tensor, torch.Tensor] | None = None
        self._recent: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=self.config.context_frames)
        self._image_size = (0, 0)
        self.num_labels = 0

    def start(self, descriptors: np.ndarray | torch.Tensor, labels: np.ndarray) -> None:
        """First frame: descriptors and its (H, W) integer label map (0 = background, 1..L-1 = objects)."""
        labels = np.asarray(labels)
        chw = as_descriptor_tensor(descriptors)
        if labels.shape != tuple(chw.shape[1:]):
            raise ValueError(f"labels must be (H, W) = {tuple(chw.shape[1:])} like the descriptors, got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
            raise ValueError(f"labels must be an integer label map, got dtype {labels.dtype}")
        if labels.min() < 0:
            raise ValueError("labels must be >= 0")
        self._image_size = labels.shape
        self.num_labels = int(labels.max()) + 1
        features = _pooled(chw, self.config.downsample, self.device)
        one_hot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), self.num_labels).permute(2, 0, 1).float()
        soft = self._downsample_labels(one_hot.to(features.device), features.shape[1:])
        self._first = (features, soft)
        self._recent.clear()

    def _downsample_labels(self, soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        factor = self.config.downsample
        if factor > 1:
            soft = F.avg_pool2d(soft[None], factor, stride=factor, ceil_mode=True)[0]
        return soft[:, : size[0], : size[1]]

    def step(self, descriptors: np.ndarray | torch.Tensor) -> np.ndarray:
        """Labels (H, W) int32 of the next frame."""
        if self._first is None:
            raise RuntimeError("LabelPropagator.step called before start()")
        chw = as_descriptor_tensor(descriptors)
        if tuple(chw.shape[1:]) != self._image_size:
            raise ValueError(f"frame size {tuple(chw.shape[1:])} differs from the first frame's {self._image_size}")
        if chw.shape[0] != self._first[0].shape[0]:
            raise ValueError(
                f"descriptor dimension {chw.shape[0]} differs from the first frame's {self._first[0].shape[0]}"
            )
        features = _pooled(chw, self.config.downsample, self.device)
        soft = self._predict(features)
        self._recent.append((features, soft))
        full = F.interpolate(soft[None], size=self._image_size, mode="bilinear", align_corners=False)[0]
        return full.argmax(0).to(torch.int32).cpu().numpy()

    @torch.inference_mode()
    def _predict(self, target: torch.Tensor) -> torch.Tensor:
        """Soft labels (L, h, w) of the target feature map from the first frame and the recent frames."""
        cfg = self.config
        d, h, w = target.shape
        labels_n = self.num_labels
        first_feat, first_soft = self._first
        first_feat, first_soft = first_feat.reshape(d, -1), first_soft.reshape(labels_n, -1)
        ys, xs = torch.meshgrid(
            torch.arange(h, device=target.device), torch.arange(w, device=target.device), indexing="ij"
        )
        cells = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1).float()
        reach = math.ceil(cfg.radius) - 1  # rows farther than this from a target row hold no cell within the radius
        out = torch.empty(labels_n, h * w, device=target.device)
        rows_per_chunk = max(1, cfg.chunk_cells // w)
        for r0 in range(0, h, rows_per_chunk):
            r1 = min(h, r0 + rows_per_chunk)
            chunk = slice(r0 * w, r1 * w)
            query = target[:, r0:r1].reshape(d, -1).T  # (n, d)
            # The first frame is matched over the whole image.
            sims = query @ first_feat
            top, index = sims.topk(min(cfg.topk, sims.shape[1]), dim=1)
            logits, labels = [top], [first_soft[:, index]]  # (n, k), (L, n, k)
            # Recent frames only within the radius: candidates from the band of rows that can be that close.
            band = slice(max(0, r0 - reach) * w, min(h, r1 + reach) * w)
            far = torch.cdist(cells[chunk], cells[band]) >= cfg.radius
            for feat, soft in self._recent:
                sims = (query @ feat.reshape(d, -1)[:, band]).masked_fill_(far, float("-inf"))
                top, index = sims.topk(min(cfg.topk, sims.shape[1]), dim=1)
                logits.append(top)
                labels.append(soft.reshape(labels_n, -1)[:, band][:, index])
            logits = torch.cat(logits, 1)
            labels = torch.cat(labels, 2)
            top, index = logits.topk(min(cfg.topk, logits.shape[1]), dim=1)
            weights = torch.softmax(top / cfg.temperature, dim=1)  # -inf (outside the radius) gets weight 0
            chosen = labels.gather(2, index[None].expand(labels_n, -1, -1))
            out[:, chunk] = (chosen * weights[None]).sum(2)
        return out.reshape(labels_n, h, w)


def propagate_labels(
    descriptor_frames: Iterable[np.ndarray | torch.Tensor],
    first_labels: np.ndarray,
    config: PropagationConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Label maps (H, W) int32 of every frame; frame 0 gets ``first_labels`` (its descriptors come first).

    ``descriptor_frames`` may be a generator, so a long video never holds all descriptor images in memory.
    """
    propagator = LabelPropagator(config, device)
    frames = iter(descriptor_frames)
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError("propagate_labels needs at least one descriptor frame") from None
    propagator.start(first, first_labels)
    results = [np.asarray(first_labels).astype(np.int32)]
    for descriptors in tqdm(frames, desc="propagating labels", unit="frame", disable=not progress):
        results.append(propagator.step(descriptors))
    return results
