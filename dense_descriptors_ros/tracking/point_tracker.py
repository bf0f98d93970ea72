"""PointTracker: tracks query points through a video by matching descriptors.

papers/000 Fig. 1: a point (or a 25-pixel square patch) chosen in one frame is found again in later frames as the
nearest neighbour of its descriptor. Per frame and for all tracks at once:

1. prediction by a constant-velocity motion model;
2. local search in a window around the prediction, with a sub-pixel refinement of the best match (parabola fit or
   soft-argmax on the score map; tracking/descriptor_search.py);
3. an occlusion decision from the descriptor distance of the best match, the ratio of the best to the second best
   score (the second best taken outside a small radius of the best) and forward-backward consistency;
4. global re-detection for the tracks that failed 3: best match over the whole (strided) image, refined locally
   and put through the same distance and ratio checks.

Two strategies say what a match is scored against (``strategy``):

- ``reference``: the descriptor each track was created with, for its whole life (never updated, so re-detection
  cannot drift with the template); the consistency check matches back into the creation frame. Real descriptors
  of a turning object stay close to their reference for only a few frames, so such tracks are lost early.
- ``propagate``: frame-to-frame propagation anchored by a memory (tracking/track_memory.py). The local search
  scores a blend of the similarity to the track's descriptor in the previous frame (slow appearance change is
  followed) and to its memory: the creation descriptor plus a bounded ring of confident past appearances, added
  only on unambiguous, forward-backward consistent matches. The memory pulls the match back onto known
  appearances (drift correction), a match unlike everything remembered is lost, the consistency check matches back
  into the previous frame, and lost tracks are looked for by the memory alone: first around the prediction, then
  over the whole image, accepted only when unambiguous there (a twin of the point keeps it lost).

A track lost for more than ``max_lost_frames`` frames in a row is dropped, and there are never more than
``max_tracks``: the cost per frame grows with the number of tracks, and queries keep coming in a long session.

Descriptor images are numpy float32 (H, W, D) or torch (D, H, W) / (1, D, H, W), unit L2 norm per pixel: full
resolution, or a network's map of output ``stride`` s (``DescriptorEngine.compute_coarse_tensor``; cell (i, j) centred
on image pixel (s i + (s - 1) / 2, s j + (s - 1) / 2)), read at the image pixels needed (features/sampling.py
PatchDescriptors: the tracks of its upsampling, without building it). Points and tracks are image (x, y) floats, pixel
centres at integers. The tracker runs on its input's device (CPU or GPU), online and causal, with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dense_descriptors_ros.features.descriptor_image import as_descriptor_tensor
from dense_descriptors_ros.features.distance import descriptor_distance
from dense_descriptors_ros.features.keypoints import select_distinctive_points
from dense_descriptors_ros.features.sampling import PatchDescriptors
from dense_descriptors_ros.tracking.descriptor_search import (
    Match,
    ReferenceAppearance,
    best_elsewhere,
    global_search,
    local_search,
    match_back,
)
from dense_descriptors_ros.tracking.track_memory import MemoryAppearance, new_memory, remember
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig


@dataclass(frozen=True)
class TrackFrame:
    """The tracks after one frame, as parallel numpy arrays (one row per track, ordered by id)."""

    frame_index: int
    ids: np.ndarray  # (N,) int64, stable for the life of a track
    positions: np.ndarray  # (N, 2) float32 (x, y); the prediction while the track is not visible
    scores: np.ndarray  # (N,) float32 cosine similarity of the match to the reference (propagate: its memory)
    visible: np.ndarray  # (N,) bool
    ages: np.ndarray  # (N,) int32 frames since the track was added
    redetected: np.ndarray  # (N,) bool, found again by global re-detection in this frame

    def __len__(self) -> int:
        return len(self.ids)


class PointTracker:
    """Tracks query points by descriptor matching; see the module docstring for the per-frame steps.

    Typical use: ``add_queries(desc0, points)`` (or ``auto_points`` in the config), then ``update(desc_t)`` for
    every frame, which returns a :class:`TrackFrame`. Queries can be added or removed between any two frames;
    ids are never reused until ``reset()``.
    """

    # Per-track state tensors, one row per track (kept in id order).
    _STATE = (
        "_ids",
        "_refs",
        "_ref_windows",
        "_ref_valid",
        "_ref_offsets",
        "_positions",
        "_velocities",
        "_scores",
        "_visible",
        "_ages",
        "_redetected",
        "_lost_frames",
        "_templates",
        "_memory",
        "_memory_valid",
        "_memory_next",
        "_last_windows",
        "_last_valid",
        "_last_offsets",
        "_distractors",
    )

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        """Drop all tracks and restart ids at 0."""
        self._next_id = 0
        self._frame_index = -1
        self._dim: int | None = None
        self._ids = torch.zeros(0, dtype=torch.long)
        self._refs = torch.zeros(0, 0)  # (N, D) reference descriptors, never updated
        self._ref_windows = torch.zeros(0, 0, 0)  # (N, K, D) reference-frame neighbourhoods for the consistency check
        self._ref_valid = torch.zeros(0, 0, dtype=torch.bool)  # (N, K)
        self._ref_offsets = torch.zeros(0, 2)  # (N, 2) query position relative to its window centre
        self._positions = torch.zeros(0, 2)
        self._velocities = torch.zeros(0, 2)
        self._scores = torch.zeros(0)
        self._visible = torch.zeros(0, dtype=torch.bool)
        self._ages = torch.zeros(0, dtype=torch.int32)
        self._redetected = torch.zeros(0, dtype=torch.bool)
        self._lost_frames = torch.zeros(0, dtype=torch.int32)  # frames in a row without a match
        # Strategy propagate: the descriptor in the last frame where the track was seen, the memory of appearances
        # (tracking/track_memory.py) and the consistency windows of the last frame where the track was seen.
        self._templates = torch.zeros(0, 0)  # (N, D)
        self._memory = torch.zeros(0, 0, 0)  # (N, M, D)
        self._memory_valid = torch.zeros(0, 0, dtype=torch.bool)  # (N, M)
        self._memory_next = torch.zeros(0, dtype=torch.long)  # (N,) next ring slot
        self._last_windows = torch.zeros(0, 0, 0)  # (N, K, D)
        self._last_valid = torch.zeros(0, 0, dtype=torch.bool)  # (N, K)
        self._last_offsets = torch.zeros(0, 2)  # (N, 2)
        # Best score of a remembered appearance elsewhere in the image, where it was seen: a twin of the point.
        self._distractors = torch.zeros(0)  # (N,)

    @property
    def num_tracks(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids.cpu().numpy()

    @torch.inference_mode()  # never a graph through the tracker, and inference tensors skip autograd bookkeeping
    def add_queries(self, descriptors: np.ndarray | torch.Tensor, points: np.ndarray, stride: int = 1) -> np.ndarray:
        """Start tracks at image (x, y) ``points`` (N, 2) of this descriptor map of output ``stride``; returns ids.
        The tracks are visible at their query positions until the next ``update``."""
        image = self._image(descriptors, stride)
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise ValueError(f"points must be finite (x, y) pairs of shape (N, 2), got shape {points.shape}")
        h, w, d = image.height, image.width, image.dim
        outside = (points[:, 0] < 0) | (points[:, 0] > w - 1) | (points[:, 1] < 0) | (points[:, 1] > h - 1)
        if outside.any():
            raise ValueError(f"query points {points[outside].tolist()} lie outside the {w}x{h} image")
        n = len(points)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        device = image.chw.device
        self._to(device)
        pos = torch.from_numpy(np.ascontiguousarray(points)).to(device)
        centres = pos.round().long()
        image.cover(centres, self.config.consistency_radius + 1)
        windows, valid = image.windows(centres, self.config.consistency_radius)
        ids = torch.arange(self._next_id, self._next_id + n, device=device)
        self._next_id += n
        k = windows.shape[1]
        refs = image.at(pos)
        memory_size = self._memory.shape[1] if self.num_tracks else self.config.memory_size
        memory, memory_valid, memory_next = new_memory(refs, memory_size)
        new_state = {
            "_ids": ids,
            "_refs": refs,
            "_ref_windows": windows,
            "_ref_valid": valid,
            "_ref_offsets": pos - centres.float(),
            "_positions": pos,
            "_velocities": torch.zeros(n, 2, device=device),
            "_scores": torch.ones(n, device=device),
            "_visible": torch.ones(n, dtype=torch.bool, device=device),
            "_ages": torch.zeros(n, dtype=torch.int32, device=device),
            "_redetected": torch.zeros(n, dtype=torch.bool, device=device),
            "_lost_frames": torch.zeros(n, dtype=torch.int32, device=device),
            "_templates": refs,
            "_memory": memory,
            "_memory_valid": memory_valid,
            "_memory_next": memory_next,
            "_last_windows": windows,
            "_last_valid": valid,
            "_last_offsets": pos - centres.float(),
            "_distractors": best_elsewhere(self.config, image, ReferenceAppearance(refs), pos).best,
        }
        m = memory_size
        shapes = {
            "_refs": (-1, d),
            "_ref_windows": (-1, k, d),
            "_ref_valid": (-1, k),
            "_templates": (-1, d),
            "_memory": (-1, m, d),
            "_memory_valid": (-1, m),
            "_last_windows": (-1, k, d),
            "_last_valid": (-1, k),
        }
        for name, values in new_state.items():
            old = getattr(self, name)
            setattr(self, name, torch.cat([old.reshape(shapes.get(name, old.shape)), values]))
        self._enforce_max_tracks()
        return ids.cpu().numpy()

    def add_automatic_queries(
        self, descriptors: np.ndarray | torch.Tensor, count: int, mask: np.ndarray | None = None, stride: int = 1
    ) -> np.ndarray:
        """Start tracks at ``count`` distinctive points spread over the image (or the image-size ``mask``); returns
        their ids. At output ``stride`` s > 1 they are map cell centres (patch and radius divided by s)."""
        image = self._image(descriptors, stride)  # the same checks as every other input
        if mask is not None and stride > 1:
            if np.shape(mask) != (image.height, image.width):
                raise ValueError(f"mask must have the image's size {(image.height, image.width)}, got {np.shape(mask)}")
            mask = np.asarray(mask)[stride // 2 :: stride, stride // 2 :: stride]
        patch = max(1, self.config.patch_size // stride) | 1  # odd
        radius = max(1, round(self.config.distinctiveness_radius / stride))
        cells = select_distinctive_points(image.chw, count, mask, patch, radius)
        return self.add_queries(descriptors, stride * cells + (stride - 1) / 2, stride)

    def remove(self, ids: int | np.ndarray | list[int]) -> None:
        """Stop the tracks with these ids (unknown ids are ignored)."""
        drop = torch.as_tensor(np.atleast_1d(np.asarray(ids, dtype=np.int64)), device=self._ids.device)
        self._keep(~torch.isin(self._ids, drop))

    @torch.inference_mode()
    def update(
        self, descriptors: np.ndarray | torch.Tensor, *, mask: np.ndarray | None = None, stride: int = 1
    ) -> TrackFrame:
        """Track all points into this descriptor map of output ``stride``; ``mask`` limits auto_points selection."""
        image = self._image(descriptors, stride)
        self._frame_index += 1
        if self.num_tracks == 0 and self.config.auto_points > 0:
            self.add_automatic_queries(descriptors, self.config.auto_points, mask, stride)
        if self.num_tracks == 0:
            return self.frame()
        cfg = self.config
        device = image.chw.device
        self._to(device)
        limits = torch.tensor([image.width - 1, image.height - 1], device=device, dtype=torch.float32)
        predicted = torch.minimum((self._positions + self._velocities).clamp_min(0.0), limits)
        # Every read of this frame lies around the predictions: patch means of their block once, where cheaper.
        image.cover(predicted.round().long(), cfg.search_radius + cfg.consistency_radius + 1)

        if cfg.strategy == "reference":
            positions, best, visible, redetected = self._match_reference(image, predicted)
        else:
            positions, best, visible, redetected = self._match_propagated(image, predicted)

        alpha = cfg.velocity_smoothing
        motion = positions - self._positions
        tracked = visible & self._visible & ~redetected
        self._velocities = torch.where(
            tracked[:, None],
            alpha * motion + (1.0 - alpha) * self._velocities,
            torch.where(visible[:, None], torch.zeros_like(motion), self._velocities * cfg.lost_velocity_decay),
        )
        self._positions = torch.where(visible[:, None], positions, predicted)
        self._scores = best
        self._visible = visible
        self._redetected = redetected
        self._ages = self._ages + 1
        self._lost_frames = torch.where(visible, 0, self._lost_frames + 1).to(torch.int32)
        if cfg.max_lost_frames > 0:
            self._keep(self._lost_frames <= cfg.max_lost_frames)
        return self.frame()

    def frame(self) -> TrackFrame:
        """The current tracks (what the last ``update`` returned, plus tracks added since)."""
        return TrackFrame(
            frame_index=max(self._frame_index, 0),
            ids=self._ids.cpu().numpy().astype(np.int64),
            positions=self._positions.cpu().numpy().astype(np.float32).reshape(-1, 2),
            scores=self._scores.cpu().numpy().astype(np.float32),
            visible=self._visible.cpu().numpy().astype(bool),
            ages=self._ages.cpu().numpy().astype(np.int32),
            redetected=self._redetected.cpu().numpy().astype(bool),
        )

    # --- internals -------------------------------------------------------------------------------------------

    def _image(self, descriptors: np.ndarray | torch.Tensor, stride: int) -> PatchDescriptors:
        """The checked descriptor map of output ``stride``, read in patch means (no copy for numpy float32 input)."""
        chw = as_descriptor_tensor(descriptors)
        if self._dim is not None and chw.shape[0] != self._dim and self.num_tracks:
            raise ValueError(f"descriptor dimension changed: tracks have D={self._dim}, image has D={chw.shape[0]}")
        self._dim = chw.shape[0]
        return PatchDescriptors(chw, self.config.patch_size, stride)

    def _keep(self, rows: torch.Tensor) -> None:
        """Keep only the tracks where the boolean mask ``rows`` is true."""
        if not bool(rows.all()):
            for name in self._STATE:
                setattr(self, name, getattr(self, name)[rows])

    def _rows(self, state: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``state`` of the tracks ``rows`` (sorted, unique): no copy when they are all tracks, the usual case."""
        return state if len(rows) == len(state) else state[rows]

    def _enforce_max_tracks(self) -> None:
        """Drop the tracks lost longest, then the oldest, until at most max_tracks remain (the newest queries are
        what was asked for last)."""
        excess = self.num_tracks - self.config.max_tracks
        if excess <= 0:
            return
        lost, ids = self._lost_frames.cpu().numpy(), self._ids.cpu().numpy()
        drop = ids[np.lexsort((ids, -lost))[:excess]]  # lexsort: the last key sorts first
        self.remove(drop)

    def _to(self, device: torch.device) -> None:
        if self._ids.device != device:
            for name in self._STATE:
                setattr(self, name, getattr(self, name).to(device))

    def _match_reference(
        self, image: PatchDescriptors, predicted: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Strategy reference: positions, scores, visibility and re-detection of all tracks in this frame."""
        cfg = self.config
        positions = predicted.clone()
        best = torch.full((self.num_tracks,), -1.0, device=predicted.device)
        visible = torch.zeros(self.num_tracks, dtype=torch.bool, device=predicted.device)
        # Tracks lost in the last frame go straight to the global search (when enabled), which covers their window.
        local_rows = torch.nonzero(self._visible | (not cfg.redetect)).flatten()
        if len(local_rows):
            centres = predicted[local_rows].round().long()
            local = local_search(cfg, image, centres, cfg.search_radius, ReferenceAppearance(self._refs[local_rows]))
            positions[local_rows] = local.positions
            best[local_rows] = local.best
            visible[local_rows] = self._accept(image, local, local_rows)
        redetected = torch.zeros_like(visible)
        lost = torch.nonzero(~visible).flatten()
        if cfg.redetect and len(lost):
            found = global_search(cfg, image, ReferenceAppearance(self._refs[lost]))
            found_ok = self._accept(image, found, lost)
            accepted = lost[found_ok]
            positions[accepted] = found.positions[found_ok]
            best[lost] = torch.maximum(best[lost], found.best)
            visible[accepted] = True
            redetected[accepted] = True
        return positions, best, visible, redetected

    def _accept(self, image: PatchDescriptors, match: Match, rows: torch.Tensor) -> torch.Tensor:
        """Visibility of the matches of tracks ``rows``: distance, ratio test and forward-backward consistency."""
        cfg = self.config
        d_best = descriptor_distance(match.best)
        ok = (d_best <= cfg.max_descriptor_distance) & (d_best <= cfg.max_ratio * descriptor_distance(match.second))
        if cfg.consistency_radius > 0 and len(rows):
            # Match the descriptor found in this frame back into the reference window around the query.
            current = image.at(match.positions)
            reference = (self._rows(state, rows) for state in (self._ref_windows, self._ref_valid, self._ref_offsets))
            error = match_back(cfg, current, *reference, cfg.consistency_radius)
            ok &= error <= cfg.max_consistency_error
        return ok

    def _match_propagated(
        self, image: PatchDescriptors, predicted: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Strategy propagate: positions, memory scores, visibility and re-detection of all tracks in this frame;
        updates the templates, the last-frame windows and the memories of the tracks seen."""
        cfg = self.config
        n, device = self.num_tracks, predicted.device
        positions = predicted.clone()
        scores = torch.full((n,), -1.0, device=device)
        visible = torch.zeros(n, dtype=torch.bool, device=device)
        confident = torch.zeros_like(visible)

        def ratio_ok(match: Match) -> torch.Tensor:
            return descriptor_distance(match.best) <= cfg.max_ratio * descriptor_distance(match.second)

        # 1. Tracks seen in the last frame: frame-to-frame match, anchored by the memory.
        rows = torch.nonzero(self._visible).flatten()
        if len(rows):
            memory = MemoryAppearance(
                self._memory[rows], self._memory_valid[rows], self._templates[rows], cfg.memory_weight
            )
            local = local_search(cfg, image, predicted[rows].round().long(), cfg.search_radius, memory)
            current = image.at(local.positions)
            to_template = descriptor_distance((current * self._templates[rows]).sum(1))
            to_memory = memory.memory_scores(current)
            # No ratio test here: smooth descriptors fail it next to the point, and the consistency check with the
            # last frame guards this step; it guards the re-detections below, where a twin could be taken.
            ok = to_template <= cfg.max_descriptor_distance
            ok &= descriptor_distance(to_memory) <= cfg.max_memory_distance
            error = torch.zeros(len(rows), device=device)
            if cfg.consistency_radius > 0:
                last = (self._rows(state, rows) for state in (self._last_windows, self._last_valid, self._last_offsets))
                error = match_back(cfg, current, *last, cfg.consistency_radius)
                ok &= error <= cfg.max_consistency_error
            positions[rows], scores[rows], visible[rows] = local.positions, to_memory, ok
            unambiguous = descriptor_distance(local.best) <= cfg.memory_ratio * descriptor_distance(local.second)
            confident[rows] = ok & unambiguous & (error <= 0.5 * cfg.max_consistency_error)
            confident[rows] &= to_memory < cfg.memory_novelty
        # 2. The others by their memory alone: around the prediction, then (when enabled) over the whole image.
        redetected = torch.zeros_like(visible)
        for search in ("local", "global"):
            lost = torch.nonzero(~visible).flatten()
            if not len(lost) or (search == "global" and not cfg.redetect):
                continue
            memory = MemoryAppearance(self._memory[lost], self._memory_valid[lost])
            if search == "local":
                found = local_search(cfg, image, predicted[lost].round().long(), cfg.search_radius, memory)
            else:
                found = global_search(cfg, image, memory)
            ok = (descriptor_distance(found.best) <= cfg.max_descriptor_distance) & ratio_ok(found)
            if search == "global":  # not onto a twin seen with the point, even while the point itself is hidden
                twin = descriptor_distance(self._distractors[lost])
                ok &= descriptor_distance(found.best) <= cfg.max_ratio * twin
            positions[lost[ok]] = found.positions[ok]
            scores[lost] = torch.maximum(scores[lost], found.best)
            visible[lost[ok]] = True
            redetected[lost[ok]] = search == "global"
        self._remember_seen(image, positions, visible, confident)
        return positions, scores, visible, redetected

    def _remember_seen(
        self, image: PatchDescriptors, positions: torch.Tensor, visible: torch.Tensor, confident: torch.Tensor
    ) -> None:
        """New templates and last-frame windows of the visible tracks; confident appearances into the memory."""
        cfg = self.config
        seen = torch.nonzero(visible).flatten()
        if not len(seen):
            return
        current = image.at(positions[seen])
        self._templates[seen] = current
        centres = positions[seen].round().long()
        windows, valid = image.windows(centres, cfg.consistency_radius)
        self._last_windows[seen], self._last_valid[seen] = windows, valid
        self._last_offsets[seen] = positions[seen] - centres.float()
        keep = confident[seen]
        rows = seen[keep]
        remember(self._memory, self._memory_valid, self._memory_next, rows, current[keep])
        if len(rows):
            twins = best_elsewhere(cfg, image, ReferenceAppearance(current[keep]), positions[rows]).best
            self._distractors[rows] = torch.maximum(self._distractors[rows], twins)
