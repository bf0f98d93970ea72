"""The searches of the point tracker: where in a descriptor image each track's appearance matches best.

A track's appearance is what its matches are scored against: the fixed reference descriptor
(:class:`ReferenceAppearance`) or a memory of appearances (tracking/track_memory.py). The searches return, for all
tracks at once, the best position (with sub-pixel refinement on the score map), its score and the best score outside
a small radius of it (for the ratio test):

- :func:`local_search`: a window around a centre per track, scanned coarse to fine;
- :func:`global_search`: the whole image pooled by a stride, then refined by a local search.

The image is read through :class:`PatchDescriptors` (patch-mean unit descriptors at image pixels, from a descriptor
map of any output stride); positions are image (x, y) with pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import torch

from dense_descriptors_ros.features.descriptor_image import window_offsets
from dense_descriptors_ros.features.sampling import PatchDescriptors


class SearchSettings(Protocol):
    """The tracker settings the searches read (TrackerConfig has them)."""

    subpixel: str
    softargmax_temperature: float
    ratio_exclusion_radius: float
    redetect_stride: int


class Appearance(Protocol):
    """Scores descriptors against each track's appearance (higher = more alike, at most 1)."""

    def window_scores(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, K) scores of (N, K, D) descriptors, row n against track n."""

    def image_scores(self, cells: torch.Tensor) -> torch.Tensor:
        """(N, C) scores of (C, D) descriptors against every track."""


def row_scores(windows: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
    """(N, K) similarities of windows (N, K, D) to one descriptor per row (N, D), row n against descriptor n."""
    return (windows * descriptors[:, None]).sum(-1)  # about twice as fast as einsum / bmm for these shapes on CPU


@dataclass(frozen=True)
class ReferenceAppearance:
    """One descriptor per track (N, D): the score is the cosine similarity to it."""

    refs: torch.Tensor

    def window_scores(self, windows: torch.Tensor) -> torch.Tensor:
        return row_scores(windows, self.refs)

    def image_scores(self, cells: torch.Tensor) -> torch.Tensor:
        return self.refs @ cells.T


@dataclass
class Match:
    positions: torch.Tensor  # (N, 2) float (x, y)
    best: torch.Tensor  # (N,) score of the best match
    second: torch.Tensor  # (N,) best score outside the exclusion radius


# The local search scores its window every COARSE_STEP pixels, then every pixel within a fine radius of the best of
# those: patch-mean scores are smooth over a pixel, so the best pixel lies next to the best of the coarse scan. The
# fine radius reaches one pixel past the ratio test's exclusion radius (4 for the default 3), so the fine window also
# holds the ring where the second best of a smooth score map usually is, and the ratio test sees nearly the second
# best of a full scan. 250 of the 625 reads of a radius-12 window (the reads and their scoring are most of a tracker
# frame); windows less than twice the fine radius are scanned at every pixel.
COARSE_STEP = 2
MIN_FINE_RADIUS = 2  # the best and its neighbours for the sub-pixel fit, wherever it is next to the coarse best


@lru_cache(maxsize=8)
def _axis_neighbours(device: torch.device) -> torch.Tensor:
    """(dx, dy) of the left, upper, right and lower neighbours: the parabola fit's (cached, do not modify)."""
    return torch.tensor([[-1, 0], [0, -1], [1, 0], [0, 1]], device=device)


def _around_best(
    sims: torch.Tensor, best: torch.Tensor, size: int, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N, K) at the (dx, dy) ``offsets`` (K, 2) from the best entry of (N, size*size) row-major score
    windows, and the best scores (N, 1). Missing neighbours (window or image edge) get the best score, which cancels
    their pull on the fit."""
    cols = (best % size)[:, None] + offsets[:, 0]
    rows = (best // size)[:, None] + offsets[:, 1]
    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    values = sims.gather(1, (rows * size + cols).clamp_(0, size * size - 1))
    centre = sims.gather(1, best[:, None])
    return torch.where(inside & values.isfinite(), values, centre), centre


def refine_subpixel(cfg: SearchSettings, sims: torch.Tensor, best: torch.Tensor, size: int) -> torch.Tensor:
    """Sub-pixel (dx, dy) (N, 2) of the best entry of (N, size*size) row-major score windows."""
    n = len(sims)
    if cfg.subpixel == "none" or n == 0:
        return torch.zeros(n, 2, device=sims.device)
    if cfg.subpixel == "softargmax":
        around = window_offsets(1, sims.device)  # the 3x3 neighbourhood
        neigh, centre = _around_best(sims, best, size, around)
        weights = torch.softmax((neigh - centre) / cfg.softargmax_temperature, dim=1)
        return weights @ around.to(weights.dtype)
    neigh, centre = _around_best(sims, best, size, _axis_neighbours(sims.device))
    left, right = neigh[:, :2], neigh[:, 2:]  # x and y at once
    curvature = left - 2.0 * centre + right
    step = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), 0.0)
    return step.clamp_(-0.5, 0.5)


def _window_scores(
    image: PatchDescriptors, centres: torch.Tensor, radius: int, step: int, appearance: Appearance
) -> torch.Tensor:
    """(N, K) scores at ``window_offsets(radius, device, step)`` around integer centres (N, 2), -inf off the image."""
    windows, valid = image.windows(centres, radius, step)
    return appearance.window_scores(windows).masked_fill_(~valid, float("-inf"))


def local_search(
    cfg: SearchSettings, image: PatchDescriptors, centres: torch.Tensor, radius: int, appearance: Appearance
) -> Match:
    """Best match of each track's appearance in the window of ``radius`` around its integer centre (N, 2): scanned
    every COARSE_STEP pixels, then every pixel near the best of those (see COARSE_STEP)."""
    device = centres.device
    fine_radius = max(MIN_FINE_RADIUS, math.ceil(cfg.ratio_exclusion_radius) + 1)
    step = COARSE_STEP if 2 * fine_radius < radius else 1
    offsets = window_offsets(radius, device, step)
    sims = _window_scores(image, centres, radius, step, appearance)
    scans = [(sims, offsets)]  # every score computed, for the ratio test's second best
    origin = torch.zeros_like(centres)  # of the scan the best and the sub-pixel fit come from
    if step > 1:
        origin = offsets[sims.argmax(dim=1)]
        offsets = window_offsets(fine_radius, device)
        sims = _window_scores(image, centres + origin, fine_radius, 1, appearance)
        sims.masked_fill_((origin[:, None] + offsets).abs().amax(-1) > radius, float("-inf"))  # inside the window
        scans.append((sims, offsets + origin[:, None]))
    best_sim, best = sims.max(dim=1)
    found = origin + offsets[best]
    second = torch.full_like(best_sim, -1.0)
    for scores, at in scans:
        near = ((at - found[:, None]) ** 2).sum(-1) <= cfg.ratio_exclusion_radius**2
        second = torch.maximum(second, scores.masked_fill(near, float("-inf")).amax(dim=1))
    size = 2 * (fine_radius if step > 1 else radius) + 1
    positions = (centres + found).float() + refine_subpixel(cfg, sims, best, size)
    return Match(positions, best_sim, second)


def _coarse_scores(
    cfg: SearchSettings, image: PatchDescriptors, appearance: Appearance
) -> tuple[torch.Tensor, int, tuple[int, int]]:
    """Scores (N, hs * ws) of every track against the image pooled in cells of about the re-detection stride, the
    cell side in pixels and the grid shape (hs, ws)."""
    cells, stride, hs, ws = image.pooled(cfg.redetect_stride)
    return appearance.image_scores(cells), stride, (hs, ws)  # one matmul for all tracks


@lru_cache(maxsize=16)
def _disc_offsets(reach: float, device: torch.device) -> torch.Tensor:
    """(K, 2) integer (dx, dy) offsets within ``reach`` of 0 (cached, do not modify)."""
    offsets = window_offsets(math.floor(reach), device)
    return offsets[(offsets**2).sum(1) <= reach**2]


def _near_cells(cfg: SearchSettings, cells: torch.Tensor, stride: int, shape: tuple[int, int]) -> torch.Tensor:
    """(N, K) flat grid indices of the cells within the ratio-test exclusion reach of integer cells (N, 2) (x, y),
    the cell itself standing in for those off the grid: a few cells to mask per track, not a mask of the grid."""
    reach = max(cfg.ratio_exclusion_radius, 2.0 * stride) / stride
    hs, ws = shape
    near = cells[:, None] + _disc_offsets(reach, cells.device)
    inside = (near >= 0).all(-1) & (near[..., 0] < ws) & (near[..., 1] < hs)
    return torch.where(inside, near[..., 1] * ws + near[..., 0], (cells[:, 1] * ws + cells[:, 0])[:, None])


def global_search(cfg: SearchSettings, image: PatchDescriptors, appearance: Appearance) -> Match:
    """Best match of each track over the image pooled in cells, refined by a local search."""
    sims, stride, shape = _coarse_scores(cfg, image, appearance)
    best = sims.argmax(dim=1)
    cells = torch.stack([best % shape[1], best // shape[1]], dim=1)
    # Second best outside the exclusion radius (in cells) of the best.
    near = _near_cells(cfg, cells, stride, shape)
    second = sims.scatter_(1, near, float("-inf")).max(dim=1).values.clamp_min(-1.0)
    refined = local_search(cfg, image, cells * stride + (stride - 1) // 2, stride, appearance)
    return Match(refined.positions, refined.best, second)


def best_elsewhere(
    cfg: SearchSettings, image: PatchDescriptors, appearance: Appearance, positions: torch.Tensor
) -> Match:
    """Each track's best match away from its own position (N, 2): a twin of the point, refined like a match."""
    sims, stride, (hs, ws) = _coarse_scores(cfg, image, appearance)
    own = (positions.round().long() // stride).clamp_max(positions.new_tensor([ws - 1, hs - 1]).long())
    sims.scatter_(1, _near_cells(cfg, own, stride, (hs, ws)), float("-inf"))
    best = sims.argmax(dim=1)
    cells = torch.stack([best % ws, best // ws], dim=1)
    return local_search(cfg, image, cells * stride + (stride - 1) // 2, stride, appearance)


def match_back(
    cfg: SearchSettings,
    descriptors: torch.Tensor,
    windows: torch.Tensor,
    valid: torch.Tensor,
    offsets: torch.Tensor,
    radius: int,
) -> torch.Tensor:
    """Forward-backward error (N,) in pixels: ``descriptors`` (N, D) matched into earlier windows (N, K, D) of
    ``radius`` around a point, against the point's offset from its window centre (N, 2)."""
    sims = row_scores(windows, descriptors).masked_fill_(~valid, float("-inf"))
    best = sims.argmax(dim=1)
    back = window_offsets(radius, descriptors.device)[best].float()
    back = back + refine_subpixel(cfg, sims, best, 2 * radius + 1)
    return torch.linalg.norm(back - offsets, dim=1)
