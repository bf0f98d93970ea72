"""Dense optical flow labels for self-supervised training (papers/000 section 3.3).

``FlowLabeler.label(a, b)`` gives the flow from frame a to frame b and a validity mask: forward-backward
consistency (the UnFlow criterion |f + b(x + f)|^2 < alpha (|f|^2 + |b(x + f)|^2) + beta) and out-of-frame masking,
so occluded or wrong flow never becomes a positive pair. ``label_chain`` composes labels over k frames for wider
baselines, optionally on frames larger than the training size (finer labels, shrunk afterwards). Small errors
that each pass the per-step check add up along a chain, so a chained label is kept only where it is cycle
consistent: the backward chain, composed the same way, brings the pixel back within ``cycle_max_px`` training
pixels. Methods: OpenCV DIS (default), Farneback (the paper's), and torchvision RAFT from a local weights file
only (never downloaded). The raw flows of a frame pair (both directions) are cached on disk, keyed by the frames'
bytes and the parameters of the flow method; every check is applied to them afterwards, so changing a threshold
reuses the cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.io.atomic_files import atomic_path

log = logging.getLogger(__name__)

FLOW_METHODS = ("dis", "farneback", "raft")
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
RAFT_MODELS = ("raft_small", "raft_large")


@dataclass
class FlowConfig:
    method: str = field(default="dis", metadata={"help": "optical flow method", "choices": FLOW_METHODS})
    dis_preset: str = field(default="medium", metadata={"help": "OpenCV DIS preset", "choices": tuple(DIS_PRESETS)})
    raft_model: str = field(default="raft_small", metadata={"help": "torchvision RAFT variant", "choices": RAFT_MODELS})
    raft_weights: str = field(
        default="",
        metadata={"help": "local RAFT state-dict file; empty: the torch hub cache file torchvision would use"},
    )
    fb_alpha: float = field(
        default=0.01, metadata={"help": "forward-backward check: relative tolerance (UnFlow)", "range": (0.0, 1.0)}
    )
    fb_beta: float = field(
        default=0.5,
        metadata={"help": "forward-backward check: absolute tolerance in px^2 (UnFlow)", "range": (0.0, 100.0)},
    )
    border_px: float = field(
        default=1.0, metadata={"help": "flow landing closer than this to the image border is invalid", "range": (0, 64)}
    )
    chain: int = field(
        default=1, metadata={"help": "frames between the two images of a pair (chained flow)", "range": (1, 30)}
    )
    chain_min: int = field(
        default=0,
        metadata={
            "help": "shortest pair gap: pairs span every gap from chain_min to chain frames (0: only chain)",
            "range": (0, 30),
        },
    )
    cycle_max_px: float = field(
        default=0.5,
        metadata={
            "help": "chained labels (gap > 1) are kept only where the backward chain brings the pixel back within "
            "this many training pixels (cycle check); 0: off. Gap 1 keeps the forward-backward check alone",
            "range": (0.0, 100.0),
        },
    )
    direct_max_px: float = field(
        default=0.0,
        metadata={
            "help": "chained labels (gap > 1) are kept only where they agree with the flow computed directly between "
            "the pair's two frames within this many training pixels; 0: off (it costs one more flow per pair)",
            "range": (0.0, 100.0),
        },
    )
    scale: int = field(
        default=2,
        metadata={
            "help": "compute flow on frames this many times the training size, then shrink the labels to it (finer "
            "labels); a video too small for it uses the largest whole factor it allows",
            "range": (1, 4),
        },
    )
    cache_dir: str = field(default="", metadata={"help": "folder for the flow label cache; empty: no cache"})
    device: str = field(default="cpu", metadata={"help": "torch device for RAFT"})

    def __post_init__(self) -> None:
        if self.chain_min > self.chain:
            raise ConfigError(f"flow.chain_min ({self.chain_min}) must not exceed flow.chain ({self.chain})")

    @property
    def gaps(self) -> tuple[int, ...]:
        """The frame gaps training pairs span (wider gaps teach invariance to larger viewpoint changes)."""
        return tuple(range(self.chain_min or self.chain, self.chain + 1))


# FlowConfig fields that change the raw flow of a frame pair, and so key the cache; the others act on cached flows.
RAW_FLOW_FIELDS = ("method", "dis_preset", "raft_model", "raft_weights")
CACHE_FORMAT = 2  # both directions of a pair in one file


@dataclass
class FlowLabel:
    """Flow from image a to image b (H, W, 2) as (dx, dy) in pixels, and where it is trustworthy (H, W) bool.

    Measured by ``label_chain`` (None otherwise), in pixels of this label: ``cycle_error`` (H, W) |F(x) + B(x + F(x))|,
    F this flow and B the flow back from b to a (inf where F leaves the image), for every gap, gap 1 included; and,
    for chains checked against the direct flow D from a to b, ``direct_error`` (H, W) |F(x) - D(x)|.
    """

    flow: np.ndarray
    valid: np.ndarray
    cycle_error: np.ndarray | None = None
    direct_error: np.ndarray | None = None

    def targets(self) -> np.ndarray:
        """(H, W, 2) pixel coordinates (x, y) in image b of every pixel of image a."""
        h, w = self.valid.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return np.stack([xs + self.flow[..., 0], ys + self.flow[..., 1]], axis=-1)


def warp_by_flow(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` sampled at x + flow(x) (values of the other image pulled back onto this image's grid)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs + flow[..., 0].astype(np.float32)
    map_y = ys + flow[..., 1].astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def inside_image(flow: np.ndarray, border_px: float) -> np.ndarray:
    """(H, W) bool: pixels whose flow lands at least ``border_px`` inside the image."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    return (tx >= border_px) & (tx <= w - 1 - border_px) & (ty >= border_px) & (ty <= h - 1 - border_px)


def forward_backward_valid(
    forward: np.ndarray, backward: np.ndarray, alpha: float = 0.01, beta: float = 0.5, border_px: float = 1.0
) -> np.ndarray:
    """Pixels whose forward flow lands inside image b and is undone by the backward flow there (UnFlow)."""
    back_at_target = warp_by_flow(backward, forward)
    mismatch = np.sum((forward + back_at_target) ** 2, axis=-1)
    tolerance = alpha * (np.sum(forward**2, axis=-1) + np.sum(back_at_target**2, axis=-1)) + beta
    return (mismatch < tolerance) & inside_image(forward, border_px) & np.isfinite(forward).all(axis=-1)


def cycle_error(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) |F(x) + B(x + F(x))|: how far the backward flow misses the start pixel; inf where F leaves the image."""
    error = np.linalg.norm(forward + warp_by_flow(backward, forward), axis=-1)
    return np.where(inside_image(forward, 0.0), error, np.inf).astype(np.float32)


def compose_labels(steps: list[FlowLabel], border_px: float = 1.0) -> FlowLabel:
    """The label from the first image of ``steps`` to the last image: the flows followed step by step, valid where
    every step is valid along the way and the end lands ``border_px`` inside the image."""
    flow, valid = steps[0].flow.copy(), steps[0].valid.copy()
    for step in steps[1:]:
        # Follow each pixel: the next step's flow and validity are read where the chain has landed so far.
        valid &= warp_by_flow(step.valid.astype(np.uint8), flow, cv2.INTER_NEAREST).astype(bool)
        flow = flow + warp_by_flow(step.flow, flow)
    return FlowLabel(flow, valid & inside_image(flow, border_px))


def shrink_label(label: FlowLabel, factor: int) -> FlowLabel:
    """A label computed on frames ``factor`` times larger, at the smaller size (H / factor, W / factor).

    Each small pixel covers a factor x factor block whose centre is the block mean of the large pixel centres, so
    its flow is the block mean of the large flow divided by ``factor``; it is valid only where the whole block is.
    """
    if factor == 1:
        return label
    flow = shrink_flow(label.flow, factor)
    valid = cv2.resize(label.valid.astype(np.float32), flow.shape[1::-1], interpolation=cv2.INTER_AREA) > 1.0 - 1e-6
    return FlowLabel(flow, valid)


def shrink_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    """A flow field computed on frames ``factor`` times larger, at the smaller size, in its pixels (block means)."""
    if factor == 1:
        return flow
    h, w = flow.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"a {w}x{h} flow label does not shrink by {factor}: the size must be a multiple")
    small = cv2.resize(flow, (w // factor, h // factor), interpolation=cv2.INTER_AREA) / factor
    return small.astype(np.float32)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _digest(image: np.ndarray) -> str:
    digest = hashlib.sha1(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for name, image in (("a", a), ("b", b)):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise ValueError(f"frame {name}: expected a non-empty uint8 RGB image, got {image.dtype} {image.shape}")
    if a.shape != b.shape:
        raise ValueError(f"frames of a pair must have the same shape, got {a.shape} and {b.shape}")


class FlowLabeler:
    """Optical flow labels with forward-backward validity, chaining and an on-disk cache."""

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        if self.config.method not in FLOW_METHODS:
            raise ValueError(f"flow method must be one of {list(FLOW_METHODS)}, got {self.config.method!r}")
        self.cache_dir = Path(self.config.cache_dir) if self.config.cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_hits = 0
        self.cache_misses = 0
        self._dis = None
        self._raft = None
        if self.config.method == "raft":
            self._raft = self._load_raft()

    # --- raw flow ---------------------------------------------------------------------------------------
    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Raw dense flow (H, W, 2) float32 from ``a`` to ``b`` (uint8 RGB or grey frames of one size)."""
        _check_pair(a, b)
        if self.config.method == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.config.dis_preset])
            return self._dis.calc(_gray(a), _gray(b), None)
        if self.config.method == "farneback":
            return cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 5, 15, 3, 5, 1.2, 0)
        return self._raft_flow(a, b)

    def _raft_weights_file(self) -> Path:
        import torch
        import torchvision.models.optical_flow as of

        if self.config.raft_weights:
            return Path(self.config.raft_weights).expanduser()
        enum = of.Raft_Small_Weights if self.config.raft_model == "raft_small" else of.Raft_Large_Weights
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.DEFAULT.url).name

    def _load_raft(self) -> Any:  # a torch module; torch is imported lazily
        import torch
        import torchvision.models.optical_flow as of

        path = self._raft_weights_file()
        if not path.is_file():
            raise FileNotFoundError(
                f"RAFT weights not found at {path}. They are never downloaded here: put the torchvision "
                f"{self.config.raft_model} state dict there (or set flow.raft_weights), or use method 'dis'."
            )
        net = getattr(of, self.config.raft_model)(weights=None)
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:
            raise ValueError(f"{path}: not a torchvision {self.config.raft_model} state dict ({exc})") from None
        return net.to(self.config.device).eval()

    def _raft_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        def tensor(image: np.ndarray) -> torch.Tensor:
            rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
            t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
            return (t / 127.5 - 1.0).to(self.config.device)

        h, w = a.shape[:2]
        pad = (0, (-w) % 8, 0, (-h) % 8)  # RAFT needs sizes divisible by 8
        ta, tb = (F.pad(tensor(x), pad, mode="replicate") for x in (a, b))
        with torch.inference_mode():
            flow = self._raft(ta, tb)[-1]
        return flow[0, :, :h, :w].permute(1, 2, 0).cpu().numpy().astype(np.float32)

    # --- labels -----------------------------------------------------------------------------------------
    def _cache_path(self, digests: tuple[str, str]) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha1(" ".join(digests).encode())
        params = {name: getattr(self.config, name) for name in RAW_FLOW_FIELDS} | {"format": CACHE_FORMAT}
        key.update(json.dumps(params, sort_keys=True).encode())
        return self.cache_dir / f"{key.hexdigest()}.npz"

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw flows a -> b and b -> a, from the disk cache when there (one file serves both orders of a pair)."""
        _check_pair(a, b)
        digests = (_digest(a), _digest(b))
        swapped = digests[1] < digests[0]
        path = self._cache_path(tuple(sorted(digests)))
        if path is not None and path.is_file():
            try:
                with np.load(path) as stored:
                    first, second = stored["first"].astype(np.float32), stored["second"].astype(np.float32)
                self.cache_hits += 1
                return (second, first) if swapped else (first, second)
            except (OSError, ValueError, KeyError) as exc:  # a cache file cut by a crash: recompute it
                log.warning("flow cache file %s unreadable (%s); recomputing", path, exc)
        self.cache_misses += 1
        # float16 keeps 1/16 px up to 128 px of motion and halves the cache; uncached labels are rounded alike.
        forward = self.flow(a, b).astype(np.float16)
        backward = self.flow(b, a).astype(np.float16)
        if path is not None:
            first, second = (backward, forward) if swapped else (forward, backward)
            # atomic_path's temporary name is the process's own: DDP ranks that label the same pair at once each
            # leave a whole file, and a reader never sees a partial one.
            with atomic_path(path) as tmp:
                np.savez_compressed(tmp, first=first, second=second)
        return forward.astype(np.float32), backward.astype(np.float32)

    def cache_flows(self, a: np.ndarray, b: np.ndarray) -> None:
        """Make sure the disk cache holds the raw flows of (a, b): computed and stored unless already there."""
        path = self._cache_path(tuple(sorted((_digest(a), _digest(b)))))
        if path is None or not path.is_file():
            self.flows(a, b)

    def _checked(self, forward: np.ndarray, backward: np.ndarray) -> FlowLabel:
        c = self.config
        return FlowLabel(forward, forward_backward_valid(forward, backward, c.fb_alpha, c.fb_beta, c.border_px))

    def label(self, a: np.ndarray, b: np.ndarray) -> FlowLabel:
        """Flow a -> b and its validity mask (forward-backward consistent, landing inside b)."""
        return self._checked(*self.flows(a, b))

    def label_chain(self, frames: list[np.ndarray], factor: int = 1) -> FlowLabel:
        """Label from ``frames[0]`` to ``frames[-1]`` at 1 / ``factor`` of the frames' size, with its cycle error.

        The label composes the consecutive labels (valid where every step passes the forward-backward check); the
        backward chain composes the reverse steps. Over more than one step, pixels whose cycle error exceeds
        ``cycle_max_px``, or (when ``direct_max_px`` is set) whose label differs from the direct flow by more than
        that, are invalid; both in pixels of the returned label.
        """
        if len(frames) < 2:
            raise ValueError(f"label_chain needs at least 2 frames, got {len(frames)}")
        c = self.config
        pairs = [self.flows(a, b) for a, b in itertools.pairwise(frames)]
        forward = compose_labels([self._checked(f, b) for f, b in pairs], c.border_px)
        backward = compose_labels([self._checked(b, f) for f, b in reversed(pairs)], c.border_px)
        forward, backward = shrink_label(forward, factor), shrink_label(backward, factor)
        label = FlowLabel(forward.flow, forward.valid, cycle_error(forward.flow, backward.flow))
        if len(pairs) == 1:
            return label
        if c.cycle_max_px > 0:
            label.valid &= label.cycle_error <= c.cycle_max_px
        if c.direct_max_px > 0:
            direct = shrink_flow(self.flows(frames[0], frames[-1])[0], factor)
            label.direct_error = np.linalg.norm(label.flow - direct, axis=-1)
            label.valid &= label.direct_error <= c.direct_max_px
        return label
