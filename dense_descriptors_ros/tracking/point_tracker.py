"""PointTracker: tracks query points through a video by nearest neighbour in descriptor space.

papers/000 Fig. 1: a point (or a 25-pixel square patch) chosen in one frame is found again in later frames as the
nearest neighbour of its descriptor. Each track keeps the descriptor it was created with for its whole life (it is
never updated, so re-detection cannot drift with the template). Per frame and for all tracks at once:

1. prediction by a constant-velocity motion model;
2. local search: similarity of the reference descriptor to every pixel of a window around the prediction, with a
   sub-pixel refinement of the best match (parabola fit or soft-argmax on the similarity map);
3. an occlusion decision from the descriptor distance of the best match, the ratio of the best to the second best
   distance (the second best taken outside a small radius of the best) and forward-backward consistency: the
   descriptor found in this frame must match back onto the query position in the reference frame;
4. global re-detection for the tracks that failed 3: nearest neighbour over the whole (strided) image, refined
   locally and put through the same checks.

A track lost for more than ``max_lost_frames`` frames in a row is dropped, and there are never more than
``max_tracks``: the cost per frame grows with the number of tracks, and queries keep coming in a long session.

Long file: the five per-frame steps share the batched track state and read as one pipeline; the redesign of the
tracker (memory of appearances) will split it.

Descriptor images are numpy float32 (H, W, D) or torch (D, H, W) / (1, D, H, W), unit L2 norm per pixel. The tracker
computes on the device of its input, so the same code runs on the CPU and on the GPU. Positions are (x, y) floats
with pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.features.descriptor_image import as_descriptor_tensor, patch_windows, window_offsets
from dense_descriptors_ros.features.distance import descriptor_distance
from dense_descriptors_ros.features.keypoints import select_distinctive_points
from dense_descriptors_ros.features.sampling import sample_patch_descriptors

SUBPIXEL_METHODS = ("parabola", "softargmax", "none")


@dataclass
class TrackerConfig:
    patch_size: int = field(
        default=5,
        metadata={
            "help": "side of the square patch whose mean descriptor is matched (papers/000: 5 = 25 pixels); 1 = "
            "single pixels",
            "range": (1, 15),
        },
    )
    search_radius: int = field(
        default=12,
        metadata={"help": "half-size in pixels of the local search window around the prediction", "range": (1, 128)},
    )
    subpixel: str = field(
        default="parabola",
        metadata={"help": "sub-pixel refinement of the best match on the similarity map", "choices": SUBPIXEL_METHODS},
    )
    softargmax_temperature: float = field(
        default=0.02,
        metadata={"help": "temperature of the 3x3 soft-argmax (subpixel=softargmax)", "range": (1e-4, 1.0)},
    )
    max_descriptor_distance: float = field(
        default=0.5,
        metadata={
            "help": "a match is occluded when the L2 distance of the unit descriptors exceeds this",
            "range": (0.0, 2.0),
        },
    )
    max_ratio: float = field(
        default=0.9,
        metadata={
            "help": "a match is occluded when best/second-best descriptor distance exceeds this (1 = off)",
            "range": (0.0, 1.0),
        },
    )
    ratio_exclusion_radius: float = field(
        default=3.0,
        metadata={
            "help": "the second best match is looked for outside this many pixels of the best",
            "range": (0.0, 64.0),
        },
    )
    consistency_radius: int = field(
        default=6,
        metadata={
            "help": "half-size of the reference-frame window of the forward-backward check (0 = no check)",
            "range": (0, 64),
        },
    )
    max_consistency_error: float = field(
        default=2.0,
        metadata={
            "help": "a match is occluded when it matches back farther than this many pixels from the query",
            "range": (0.0, 64.0),
        },
    )
    redetect: bool = field(
        default=True, metadata={"help": "search the whole image for tracks whose local match is lost"}
    )
    redetect_stride: int = field(
        default=4, metadata={"help": "pixel stride of the global re-detection search", "range": (1, 32)}
    )
    velocity_smoothing: float = field(
        default=0.8,
        metadata={
            "help": "weight of the newest displacement in the velocity estimate (0 = no motion model)",
            "range": (0.0, 1.0),
        },
    )
    lost_velocity_decay: float = field(
        default=0.5, metadata={"help": "velocity factor per frame while a track is lost", "range": (0.0, 1.0)}
    )
    auto_points: int = field(
        default=0,
        metadata={
            "help": "when the tracker has no tracks, select this many distinctive points automatically (0 = off)",
            "range": (0, 10000),
        },
    )
    distinctiveness_radius: int = field(
        default=4,
        metadata={"help": "pixel distance of the neighbours a distinctive point must differ from", "range": (1, 32)},
    )
    max_tracks: int = field(
        default=500,
        metadata={
            "help": "most tracks kept; new queries beyond it replace the longest-lost tracks, then the oldest",
            "range": (1, 100000),
        },
    )
    max_lost_frames: int = field(
        default=300,
        metadata={
            "help": "a track not found for more than this many frames in a row is dropped (0 = kept forever)",
            "range": (0, 10**7),
        },
    )

    def __post_init__(self) -> None:
        if self.patch_size % 2 == 0:
            raise ConfigError(f"patch_size must be odd, got {self.patch_size}")
        if self.subpixel not in SUBPIXEL_METHODS:
            raise ConfigError(f"subpixel {self.subpixel!r} is not one of {list(SUBPIXEL_METHODS)}")


@dataclass(frozen=True)
class TrackFrame:
    """The tracks after one frame, as parallel numpy arrays (one row per track, ordered by id)."""

    frame_index: int
    ids: np.ndarray  # (N,) int64, stable for the life of a track
    positions: np.ndarray  # (N, 2) float32 (x, y); the prediction while the track is not visible
    scores: np.ndarray  # (N,) float32 cosine similarity of the best match to the reference descriptor
    visible: np.ndarray  # (N,) bool
    ages: np.ndarray  # (N,) int32 frames since the track was added
    redetected: np.ndarray  # (N,) bool, found again by global re-detection in this frame

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Match:
    positions: torch.Tensor  # (N, 2) float (x, y)
    best: torch.Tensor  # (N,) similarity of the best match
    second: torch.Tensor  # (N,) best similarity outside the exclusion radius


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

    @property
    def num_tracks(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids.cpu().numpy()

    def add_queries(self, descriptors: np.ndarray | torch.Tensor, points: np.ndarray) -> np.ndarray:
        """Start tracks at float (x, y) ``points`` (N, 2) of this reference descriptor image; returns their new ids.

        The tracks are visible at their query positions until the next ``update``.
        """
        hwd = self._image(descriptors)
        points = np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise ValueError(f"points must be finite (x, y) pairs of shape (N, 2), got shape {points.shape}")
        h, w, d = hwd.shape
        outside = (points[:, 0] < 0) | (points[:, 0] > w - 1) | (points[:, 1] < 0) | (points[:, 1] > h - 1)
        if outside.any():
            raise ValueError(f"query points {points[outside].tolist()} lie outside the {w}x{h} image")
        n = len(points)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        device = hwd.device
        self._to(device)
        patch = self.config.patch_size
        pos = torch.from_numpy(np.ascontiguousarray(points)).to(device)
        centres = pos.round().long()
        windows, valid = patch_windows(hwd, centres, self.config.consistency_radius, patch)
        ids = torch.arange(self._next_id, self._next_id + n, device=device)
        self._next_id += n
        k = windows.shape[1]
        new_state = {
            "_ids": ids,
            "_refs": sample_patch_descriptors(hwd, pos, patch),
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
        }
        shapes = {"_refs": (-1, d), "_ref_windows": (-1, k, d), "_ref_valid": (-1, k)}
        for name, values in new_state.items():
            old = getattr(self, name)
            setattr(self, name, torch.cat([old.reshape(shapes.get(name, old.shape)), values]))
        self._enforce_max_tracks()
        return ids.cpu().numpy()

    def add_automatic_queries(
        self, descriptors: np.ndarray | torch.Tensor, count: int, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Start tracks at ``count`` distinctive points spread over the image (or ``mask``); returns their ids."""
        self._image(descriptors)  # the same checks as every other input
        points = select_distinctive_points(
            descriptors, count, mask, self.config.patch_size, self.config.distinctiveness_radius
        )
        return self.add_queries(descriptors, points)

    def remove(self, ids: int | np.ndarray | list[int]) -> None:
        """Stop the tracks with these ids (unknown ids are ignored)."""
        drop = torch.as_tensor(np.atleast_1d(np.asarray(ids, dtype=np.int64)), device=self._ids.device)
        self._keep(~torch.isin(self._ids, drop))

    def update(self, descriptors: np.ndarray | torch.Tensor, mask: np.ndarray | None = None) -> TrackFrame:
        """Track all points into this descriptor image; ``mask`` limits automatic query selection (auto_points)."""
        hwd = self._image(descriptors)
        self._frame_index += 1
        if self.num_tracks == 0 and self.config.auto_points > 0:
            self.add_automatic_queries(descriptors, self.config.auto_points, mask)
        if self.num_tracks == 0:
            return self.frame()
        cfg = self.config
        self._to(hwd.device)
        h, w, _ = hwd.shape
        limits = torch.tensor([w - 1, h - 1], device=hwd.device, dtype=torch.float32)
        predicted = torch.minimum((self._positions + self._velocities).clamp_min(0.0), limits)

        positions = predicted.clone()
        best = torch.full((self.num_tracks,), -1.0, device=hwd.device)
        visible = torch.zeros(self.num_tracks, dtype=torch.bool, device=hwd.device)
        # Tracks lost in the last frame go straight to the global search (when enabled), which covers their window.
        local_rows = torch.nonzero(self._visible | (not cfg.redetect)).flatten()
        if len(local_rows):
            centres = predicted[local_rows].round().long()
            local = self._local_search(hwd, centres, cfg.search_radius, self._refs[local_rows])
            positions[local_rows] = local.positions
            best[local_rows] = local.best
            visible[local_rows] = self._accept(hwd, local, local_rows)
        redetected = torch.zeros_like(visible)
        lost = torch.nonzero(~visible).flatten()
        if cfg.redetect and len(lost):
            found = self._global_search(hwd, self._refs[lost])
            found_ok = self._accept(hwd, found, lost)
            accepted = lost[found_ok]
            positions[accepted] = found.positions[found_ok]
            best[lost] = torch.maximum(best[lost], found.best)
            visible[accepted] = True
            redetected[accepted] = True

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

    def _image(self, descriptors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The checked descriptor image as a contiguous (H, W, D) tensor (no copy for numpy float32 input)."""
        chw = as_descriptor_tensor(descriptors)
        if self._dim is not None and chw.shape[0] != self._dim and self.num_tracks:
            raise ValueError(f"descriptor dimension changed: tracks have D={self._dim}, image has D={chw.shape[0]}")
        self._dim = chw.shape[0]
        return chw.permute(1, 2, 0).contiguous()

    def _keep(self, rows: torch.Tensor) -> None:
        """Keep only the tracks where the boolean mask ``rows`` is true."""
        if not bool(rows.all()):
            for name in self._STATE:
                setattr(self, name, getattr(self, name)[rows])

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

    def _refine(self, sims: torch.Tensor, best: torch.Tensor, size: int) -> torch.Tensor:
        """Sub-pixel (dx, dy) (N, 2) of the best entry of (N, size*size) row-major similarity windows."""
        n = len(sims)
        if self.config.subpixel == "none" or n == 0:
            return torch.zeros(n, 2, device=sims.device)
        grid = F.pad(sims.reshape(n, size, size), (1, 1, 1, 1), value=float("-inf"))
        by, bx = best // size + 1, best % size + 1
        rows = torch.arange(n, device=sims.device)
        neigh = torch.stack([grid[rows, by + dy, bx + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dim=1)
        neigh = neigh.reshape(n, 3, 3)
        centre = neigh[:, 1, 1]
        # Missing neighbours (window or image edge) get the centre value, which cancels their pull.
        neigh = torch.where(torch.isfinite(neigh), neigh, centre[:, None, None])
        if self.config.subpixel == "softargmax":
            logits = (neigh - centre[:, None, None]) / self.config.softargmax_temperature
            weights = torch.softmax(logits.reshape(n, 9), dim=1).reshape(n, 3, 3)
            steps = torch.tensor([-1.0, 0.0, 1.0], device=sims.device)
            return torch.stack([(weights.sum(1) * steps).sum(1), (weights.sum(2) * steps).sum(1)], dim=1)
        offsets = []
        for left, right in ((neigh[:, 1, 0], neigh[:, 1, 2]), (neigh[:, 0, 1], neigh[:, 2, 1])):
            curvature = left - 2.0 * centre + right
            step = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), 0.0)
            offsets.append(step.clamp(-0.5, 0.5))
        return torch.stack(offsets, dim=1)

    def _local_search(self, hwd: torch.Tensor, centres: torch.Tensor, radius: int, refs: torch.Tensor) -> _Match:
        """Best match of each reference descriptor (N, D) in the window of ``radius`` around its integer centre."""
        windows, valid = patch_windows(hwd, centres, radius, self.config.patch_size)
        sims = torch.einsum("nkd,nd->nk", windows, refs).masked_fill_(~valid, float("-inf"))
        best_sim, best = sims.max(dim=1)
        offsets = window_offsets(radius, hwd.device)
        near = ((offsets[None] - offsets[best][:, None]) ** 2).sum(-1)
        second = sims.masked_fill(near <= self.config.ratio_exclusion_radius**2, float("-inf"))
        second = second.max(dim=1).values.clamp_min(-1.0)
        positions = (centres + offsets[best]).float() + self._refine(sims, best, 2 * radius + 1)
        return _Match(positions, best_sim, second)

    def _global_search(self, hwd: torch.Tensor, refs: torch.Tensor) -> _Match:
        """Nearest neighbour of each reference over the image pooled by the stride, refined by a local search."""
        h, w, d = hwd.shape
        stride = min(self.config.redetect_stride, h, w)
        hs, ws = h // stride, w // stride
        # Cell sums (the normalisation makes them means); the last h % stride rows / columns are left out.
        rows = hwd[: hs * stride, : ws * stride].reshape(hs, stride, ws * stride * d).sum(1)
        coarse = rows.reshape(hs * ws, stride, d).sum(1)
        sims = refs @ F.normalize(coarse, dim=1).T  # one matmul for all lost tracks
        best = sims.argmax(dim=1)
        by, bx = best // ws, best % ws
        # Second best outside the exclusion radius (in cells) of the best.
        reach = max(self.config.ratio_exclusion_radius, 2.0 * stride) / stride
        dy2 = (torch.arange(hs, device=hwd.device)[None] - by[:, None]) ** 2
        dx2 = (torch.arange(ws, device=hwd.device)[None] - bx[:, None]) ** 2
        near = (dy2[:, :, None] + dx2[:, None, :]).reshape(len(refs), -1) <= reach**2
        second = sims.masked_fill_(near, float("-inf")).max(dim=1).values.clamp_min(-1.0)
        cells = torch.stack([bx, by], dim=1) * stride + (stride - 1) // 2
        refined = self._local_search(hwd, cells, stride, refs)
        return _Match(refined.positions, refined.best, second)

    def _accept(self, hwd: torch.Tensor, match: _Match, rows: torch.Tensor) -> torch.Tensor:
        """Visibility of the matches of tracks ``rows``: distance, ratio test and forward-backward consistency."""
        cfg = self.config
        d_best = descriptor_distance(match.best)
        ok = (d_best <= cfg.max_descriptor_distance) & (d_best <= cfg.max_ratio * descriptor_distance(match.second))
        if cfg.consistency_radius > 0 and len(rows):
            # Match the descriptor found in this frame back into the reference window around the query.
            current = sample_patch_descriptors(hwd, match.positions, cfg.patch_size)
            sims = torch.einsum("nkd,nd->nk", self._ref_windows[rows], current)
            sims = sims.masked_fill_(~self._ref_valid[rows], float("-inf"))
            best = sims.argmax(dim=1)
            offsets = window_offsets(cfg.consistency_radius, hwd.device)
            back = offsets[best].float() + self._refine(sims, best, 2 * cfg.consistency_radius + 1)
            ok &= torch.linalg.norm(back - self._ref_offsets[rows], dim=1) <= cfg.max_consistency_error
        return ok
