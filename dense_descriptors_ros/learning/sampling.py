"""Pixel pair sampling for the contrastive loss.

Matches (papers/000 section 3.3): pixels of image a whose flow is valid and lands on the object in image b.
Non-matches per match, in one of two ways:
- ``object``: uniformly at random on the object in image b (papers/000), optionally a share of them off the object
  (``background_fraction``), which keeps the object's descriptors apart from its background, and a share close to
  the match (``local_fraction``), which makes them precise enough to track with;
- ``bands``: SAND targeted negatives (papers/003 eq. 7) at a distance in (alpha, beta) from the true match, one
  band per descriptor channel group (hierarchical context aggregation, eqs. 8-9; e.g. G = (0, inf), L = (0, 25)).
Optionally UCN active hard negatives (papers/001): the nearest neighbour in descriptor space, when it lies more
than ``hard_negative_min_px`` from the true match, is one extra non-match (see ``hard_negatives``).

Outputs have fixed shapes (padded, with validity flags) so pairs batch together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from dense_descriptors_ros.learning.flow import FlowLabel

NEGATIVE_MODES = ("object", "bands")


@dataclass
class SamplerConfig:
    num_matches: int = field(default=2500, metadata={"help": "matches per image pair", "range": (1, 100000)})
    non_matches_per_match: int = field(
        default=150, metadata={"help": "non-matches sampled for every match", "range": (1, 1000)}
    )
    negatives: str = field(
        default="object",
        metadata={
            "help": "object: uniform on the object (papers/000); bands: SAND radius bands",
            "choices": NEGATIVE_MODES,
        },
    )
    band_min_px: list[float] = field(
        default_factory=lambda: [0.0], metadata={"help": "alpha of each band (one band per channel group), px"}
    )
    band_max_px: list[float] = field(
        default_factory=lambda: [math.inf], metadata={"help": "beta of each band, px (.inf: unbounded)"}
    )
    background_fraction: float = field(
        default=0.0,
        metadata={
            "help": "object negatives: share of each match's non-matches drawn off the object in image b, so the "
            "object's descriptors also stay apart from the background",
            "range": (0.0, 1.0),
        },
    )
    local_fraction: float = field(
        default=0.0,
        metadata={
            "help": "object negatives: share of each match's non-matches drawn on the object within local_radius_px "
            "of the true match (the precision a tracker needs; papers/003's local band)",
            "range": (0.0, 1.0),
        },
    )
    local_radius_px: float = field(
        default=8.0, metadata={"help": "outer radius of the local non-matches, px", "range": (1.0, 1000.0)}
    )
    min_non_match_px: float = field(
        default=2.0, metadata={"help": "non-matches closer than this to the true match are dropped", "range": (0, 1000)}
    )
    hard_negatives: bool = field(default=False, metadata={"help": "add the UCN nearest-neighbour hard negative"})
    hard_negative_min_px: float = field(
        default=16.0, metadata={"help": "a nearest neighbour farther than this from the match is a hard negative"}
    )
    hard_negative_stride: int = field(
        default=2, metadata={"help": "search the hard negative on every n-th pixel of image b", "range": (1, 16)}
    )

    def __post_init__(self) -> None:
        self.band_min_px = [float(v) for v in self.band_min_px]
        self.band_max_px = [float(v) for v in self.band_max_px]
        if len(self.band_min_px) != len(self.band_max_px) or not self.band_min_px:
            raise ValueError(
                f"band_min_px {self.band_min_px} and band_max_px {self.band_max_px} need the same, non-zero length"
            )
        for alpha, beta in zip(self.band_min_px, self.band_max_px, strict=True):
            if not 0 <= alpha < beta:
                raise ValueError(f"a band needs 0 <= alpha < beta, got ({alpha}, {beta})")

    @property
    def num_groups(self) -> int:
        """Channel groups the non-matches are drawn for (the number of bands; 1 for object negatives)."""
        return len(self.band_min_px) if self.negatives == "bands" else 1


@dataclass
class PairSamples:
    """Correspondences of one image pair; coordinates are (x, y) float32, pixel centres at integers.

    matches_a, matches_b: (M, 2); match_valid: (M,) bool.
    non_matches_b: (G, M, K, 2), the non-matches of match m in image b for channel group g (their image-a
    pixel is matches_a[m]); non_match_valid: (G, M, K) bool.
    """

    matches_a: np.ndarray
    matches_b: np.ndarray
    match_valid: np.ndarray
    non_matches_b: np.ndarray
    non_match_valid: np.ndarray

    @property
    def num_valid_matches(self) -> int:
        return int(self.match_valid.sum())


def inside_image(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 2) points (x, y) that lie on the pixel grid of an image of this size."""
    x, y = points[..., 0], points[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def _lookup(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Nearest-pixel lookup of a bool mask at (..., 2) points; False outside the image."""
    h, w = mask.shape
    xi = np.clip(np.rint(points[..., 0]).astype(np.int64), 0, w - 1)
    yi = np.clip(np.rint(points[..., 1]).astype(np.int64), 0, h - 1)
    return mask[yi, xi] & inside_image(points, h, w)


class PairSampler:
    """Samples matches and non-matches for a pair from its flow label and object masks."""

    def __init__(self, config: SamplerConfig | None = None) -> None:
        self.config = config or SamplerConfig()
        if self.config.negatives not in NEGATIVE_MODES:
            raise ValueError(f"negatives must be one of {list(NEGATIVE_MODES)}, got {self.config.negatives!r}")

    def sample(self, label: FlowLabel, mask_a: np.ndarray, mask_b: np.ndarray, rng: np.random.Generator) -> PairSamples:
        """Matches and non-matches for one pair (label: flow a -> b)."""
        c = self.config
        if mask_a.shape != label.valid.shape or mask_b.shape != label.valid.shape:
            raise ValueError(
                f"masks {mask_a.shape}, {mask_b.shape} and flow {label.valid.shape} must have the same size"
            )
        h, w = mask_a.shape
        targets = label.targets()
        candidates = label.valid & mask_a & _lookup(mask_b, targets)
        ys, xs = np.nonzero(candidates)
        m, k, g = c.num_matches, c.non_matches_per_match, c.num_groups
        matches_a = np.zeros((m, 2), np.float32)
        matches_b = np.zeros((m, 2), np.float32)
        match_valid = np.zeros(m, bool)
        if xs.size:
            chosen = rng.choice(xs.size, size=min(m, xs.size), replace=False)
            n = chosen.size
            matches_a[:n] = np.stack([xs[chosen], ys[chosen]], -1)
            matches_b[:n] = targets[ys[chosen], xs[chosen]]
            match_valid[:n] = True
        non_matches = np.zeros((g, m, k, 2), np.float32)
        non_valid = np.zeros((g, m, k), bool)
        object_b = np.stack(np.nonzero(mask_b)[::-1], -1).astype(np.float32)  # (P, 2) x, y
        if object_b.shape[0] and match_valid.any():
            for group in range(g):
                if c.negatives == "object":
                    alpha, beta = c.min_non_match_px, math.inf
                else:
                    alpha, beta = max(c.band_min_px[group], c.min_non_match_px), c.band_max_px[group]
                non_matches[group] = self._negatives(matches_b, object_b, alpha, beta, (h, w), k, rng)
                dist = np.linalg.norm(non_matches[group] - matches_b[:, None], axis=-1)
                non_valid[group] = (dist > alpha) & (dist < beta) & _lookup(mask_b, non_matches[group])
            if c.negatives == "object":
                self._replace_object_columns(non_matches[0], non_valid[0], matches_b, mask_b, object_b, rng)
            non_valid &= match_valid[None, :, None]
        return PairSamples(matches_a, matches_b, match_valid, non_matches, non_valid)

    def _replace_object_columns(
        self,
        non_matches: np.ndarray,
        non_valid: np.ndarray,
        matches_b: np.ndarray,
        mask_b: np.ndarray,
        object_b: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Object negatives, in place: the last columns off the object, the ones before them local (see config)."""
        c = self.config
        m, k = non_valid.shape
        k_background = round(k * c.background_fraction)
        k_local = min(round(k * c.local_fraction), k - k_background)
        background_b = np.stack(np.nonzero(~mask_b)[::-1], -1).astype(np.float32)
        if k_background and background_b.shape[0]:
            picks = rng.integers(0, background_b.shape[0], size=(m, k_background))
            non_matches[:, k - k_background :] = background_b[picks]
            non_valid[:, k - k_background :] = True
        if k_local:
            columns = slice(k - k_background - k_local, k - k_background)
            alpha, beta = c.min_non_match_px, max(c.local_radius_px, c.min_non_match_px + 1.0)
            local = self._negatives(matches_b, object_b, alpha, beta, mask_b.shape, k_local, rng)
            dist = np.linalg.norm(local - matches_b[:, None], axis=-1)
            non_matches[:, columns] = local
            non_valid[:, columns] = (dist > alpha) & (dist < beta) & _lookup(mask_b, local)

    @staticmethod
    def _negatives(
        matches_b: np.ndarray,
        object_b: np.ndarray,
        alpha: float,
        beta: float,
        size: tuple[int, int],
        k: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """(M, K, 2) integer pixel positions: uniform on the object, or uniform over the (alpha, beta) annulus."""
        m = matches_b.shape[0]
        h, w = size
        if beta >= math.hypot(h, w):  # the band covers the whole image: uniform on the object
            return object_b[rng.integers(0, object_b.shape[0], size=(m, k))]
        # Uniform in the annulus area: r^2 uniform in (alpha^2, beta^2).
        radius = np.sqrt(rng.uniform(alpha**2, beta**2, size=(m, k)))
        angle = rng.uniform(0, 2 * np.pi, size=(m, k))
        offsets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)
        return np.rint(matches_b[:, None] + offsets).astype(np.float32)

    def hard_negatives(
        self, desc_a_at_matches: torch.Tensor, desc_b: torch.Tensor, matches_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """UCN active hard negatives of one pair: for each match, the nearest neighbour in descriptor space in
        image b (searched on every ``hard_negative_stride``-th pixel) when it lies more than
        ``hard_negative_min_px`` from the true match.

        desc_a_at_matches: (M, D); desc_b: (D, H, W); matches_b: (M, 2) (x, y). Returns (M, 2) positions and (M,)
        bool flags saying which are hard negatives.
        """
        c = self.config
        step = c.hard_negative_stride
        grid = desc_b[:, ::step, ::step]
        gw = grid.shape[2]
        flat = grid.reshape(grid.shape[0], -1).T.float()  # (P, D)
        nearest = torch.cat([torch.cdist(chunk.float(), flat).argmin(dim=1) for chunk in desc_a_at_matches.split(1024)])
        positions = torch.stack([(nearest % gw) * step, (nearest // gw) * step], dim=-1).to(matches_b.dtype)
        far = (positions - matches_b).norm(dim=-1) > c.hard_negative_min_px
        return positions, far
