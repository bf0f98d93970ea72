"""Dense optical flow labels for self-supervised training (papers/000 section 3.3).

``FlowLabeler.label(a, b)`` gives the flow from frame a to frame b and a validity mask: forward-backward
consistency (the UnFlow criterion |f + b(x + f)|^2 < alpha (|f|^2 + |b(x + f)|^2) + beta) and out-of-frame masking,
so occluded or wrong flow never becomes a positive pair. ``label_chain`` composes labels over k frames for wider
baselines. Methods: OpenCV DIS (default), Farneback (the paper's), and torchvision RAFT from a local weights file
only (never downloaded). Labels are cached on disk keyed by the frames' bytes and the method parameters.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dense_descriptors_ros.config import ConfigError

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
    scale: int = field(
        default=1,
        metadata={
            "help": "compute flow on frames this many times the training size, then shrink the labels to it (finer "
            "labels; needs a video at that resolution)",
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


@dataclass
class FlowLabel:
    """Flow from image a to image b (H, W, 2) as (dx, dy) in pixels, and where it is trustworthy (H, W) bool."""

    flow: np.ndarray
    valid: np.ndarray

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


def forward_backward_valid(
    forward: np.ndarray, backward: np.ndarray, alpha: float = 0.01, beta: float = 0.5, border_px: float = 1.0
) -> np.ndarray:
    """Pixels whose forward flow lands inside image b and is undone by the backward flow there (UnFlow)."""
    h, w = forward.shape[:2]
    back_at_target = warp_by_flow(backward, forward)
    mismatch = np.sum((forward + back_at_target) ** 2, axis=-1)
    tolerance = alpha * (np.sum(forward**2, axis=-1) + np.sum(back_at_target**2, axis=-1)) + beta
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx, ty = xs + forward[..., 0], ys + forward[..., 1]
    inside = (tx >= border_px) & (tx <= w - 1 - border_px) & (ty >= border_px) & (ty <= h - 1 - border_px)
    return (mismatch < tolerance) & inside & np.isfinite(forward).all(axis=-1)


def shrink_label(label: FlowLabel, factor: int) -> FlowLabel:
    """A label computed on frames ``factor`` times larger, at the smaller size (H / factor, W / factor).

    Each small pixel covers a factor x factor block whose centre is the block mean of the large pixel centres, so
    its flow is the block mean of the large flow divided by ``factor``; it is valid only where the whole block is.
    """
    if factor == 1:
        return label
    h, w = label.valid.shape
    if h % factor or w % factor:
        raise ValueError(f"a {w}x{h} flow label does not shrink by {factor}: the size must be a multiple")
    size = (w // factor, h // factor)
    flow = cv2.resize(label.flow, size, interpolation=cv2.INTER_AREA) / factor
    valid = cv2.resize(label.valid.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 1.0 - 1e-6
    return FlowLabel(flow.astype(np.float32), valid)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


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
    def _params(self) -> dict:
        params = asdict(self.config)
        for key in ("cache_dir", "chain", "chain_min", "scale", "device"):
            params.pop(key)
        return params

    def _cache_path(self, a: np.ndarray, b: np.ndarray) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha1()
        for image in (a, b):
            digest.update(str(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(json.dumps(self._params(), sort_keys=True).encode())
        return self.cache_dir / f"{digest.hexdigest()}.npz"

    def label(self, a: np.ndarray, b: np.ndarray) -> FlowLabel:
        """Flow a -> b and its validity mask (forward-backward consistent, landing inside b); cached on disk."""
        _check_pair(a, b)
        path = self._cache_path(a, b)
        if path is not None and path.is_file():
            try:
                with np.load(path) as stored:
                    self.cache_hits += 1
                    return FlowLabel(stored["flow"].astype(np.float32), stored["valid"])
            except (OSError, ValueError, KeyError) as exc:  # a cache file cut by a crash: recompute it
                log.warning("flow cache file %s unreadable (%s); recomputing", path, exc)
        self.cache_misses += 1
        forward = self.flow(a, b)
        backward = self.flow(b, a)
        c = self.config
        valid = forward_backward_valid(forward, backward, c.fb_alpha, c.fb_beta, c.border_px)
        # float16 keeps 1/16 px up to 128 px of motion and halves the cache.
        label = FlowLabel(forward.astype(np.float16).astype(np.float32), valid)
        if path is not None:
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, flow=forward.astype(np.float16), valid=valid)
            tmp.replace(path)
        return label

    def label_chain(self, frames: list[np.ndarray]) -> FlowLabel:
        """Flow from ``frames[0]`` to ``frames[-1]`` composed from consecutive labels; valid where every step is."""
        if len(frames) < 2:
            raise ValueError(f"label_chain needs at least 2 frames, got {len(frames)}")
        first = self.label(frames[0], frames[1])
        flow, valid = first.flow.copy(), first.valid.copy()
        h, w = valid.shape
        for a, b in itertools.pairwise(frames[1:]):
            step = self.label(a, b)
            # Follow each pixel: the next step's flow and validity are read where the chain has landed so far.
            valid &= warp_by_flow(step.valid.astype(np.uint8), flow, cv2.INTER_NEAREST).astype(bool)
            flow = flow + warp_by_flow(step.flow, flow)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        tx, ty = xs + flow[..., 0], ys + flow[..., 1]
        border = self.config.border_px
        valid &= (tx >= border) & (tx <= w - 1 - border) & (ty >= border) & (ty <= h - 1 - border)
        return FlowLabel(flow, valid)
