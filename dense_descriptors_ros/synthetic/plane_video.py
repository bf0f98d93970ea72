"""Synthetic video with known motion and oracle descriptors, for tracker tests and benchmarks.

A procedural colour texture on an infinite plane is moved by a known affine transform per frame
(texture coordinates -> image pixels); an optional square occluder with its own texture slides over it.
The oracle descriptor of a pixel is a fixed random-Fourier-feature embedding of the texture coordinates it
shows (plus noise), so it is invariant to rotation and scale and unique over the plane: it stands for an ideal
learned descriptor. Frames are made on demand, so long sequences cost no memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dense_descriptors_ros.synthetic.textures import FourierField


def similarity_transform(angle: float, scale: float, tx: float, ty: float, centre: tuple[float, float]) -> np.ndarray:
    """(2, 3) affine: rotate by ``angle`` (radians) and scale about ``centre``, then translate by (tx, ty)."""
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    cx, cy = centre
    return np.array([[c, -s, cx - c * cx + s * cy + tx], [s, c, cy - s * cx - c * cy + ty]])


@dataclass
class SyntheticSequence:
    """Frames of a moving textured plane (and occluder); ground truth from the known transforms."""

    transforms: np.ndarray  # (T, 2, 3) texture coordinates -> image pixels
    height: int
    width: int
    occluder_boxes: np.ndarray | None = None  # (T, 4) x0, y0, x1, y1 in pixels (inclusive), or None
    descriptor_dim: int = 32
    noise: float = 0.03
    seed: int = 0
    _fields: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.transforms = np.asarray(self.transforms, dtype=np.float64)
        self._fields = {
            "descriptor": FourierField(self.descriptor_dim, 4.0, 60.0, self.seed),
            "occluder_descriptor": FourierField(self.descriptor_dim, 4.0, 60.0, self.seed + 1),
            "colour": FourierField(24, 6.0, 40.0, self.seed + 2),
            "occluder_colour": FourierField(24, 6.0, 40.0, self.seed + 3),
        }
        mix = np.random.default_rng(self.seed + 4)
        self._colour_mix = mix.normal(size=(24, 3)) / math.sqrt(24)

    def __len__(self) -> int:
        return len(self.transforms)

    def _texture_coords(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates shown at every pixel (H, W, 2) and the occluder mask (H, W) of frame t."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        pixels = np.stack([xs, ys], -1)
        a = self.transforms[t]
        inverse = np.linalg.inv(a[:, :2])
        coords = (pixels - a[:, 2]) @ inverse.T
        occluded = np.zeros((self.height, self.width), dtype=bool)
        if self.occluder_boxes is not None:
            x0, y0, x1, y1 = self.occluder_boxes[t]
            occluded = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            coords[occluded] = pixels[occluded] - [x0, y0]
        return coords, occluded

    def _field(self, name: str, coords: np.ndarray, occluded: np.ndarray) -> np.ndarray:
        """Field ``name`` of the plane, and of the occluder where it covers the plane."""
        values = self._fields[name](coords)
        if occluded.any():
            values[occluded] = self._fields[f"occluder_{name}"](coords[occluded])
        return values

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (H, W, 3), oracle descriptors float32 (H, W, D) with unit norm) of frame t."""
        coords, occluded = self._texture_coords(t)
        colour = self._field("colour", coords, occluded)
        rgb = np.clip(128.0 + 110.0 * (colour @ self._colour_mix), 0, 255).astype(np.uint8)
        desc = self._field("descriptor", coords, occluded)
        rng = np.random.default_rng(self.seed * 100003 + t)
        desc += rng.normal(scale=self.noise, size=desc.shape)
        desc /= np.linalg.norm(desc, axis=-1, keepdims=True)
        return rgb, desc.astype(np.float32)

    def project(self, texture_points: np.ndarray) -> np.ndarray:
        """(T, N, 2) image positions of (N, 2) plane points."""
        pts = np.asarray(texture_points, dtype=np.float64)
        return np.einsum("tij,nj->tni", self.transforms[:, :, :2], pts) + self.transforms[:, None, :, 2]

    def texture_points(self, image_points: np.ndarray, t: int = 0) -> np.ndarray:
        """(N, 2) plane points shown at (N, 2) image positions of frame t."""
        a = self.transforms[t]
        return (np.asarray(image_points, dtype=np.float64) - a[:, 2]) @ np.linalg.inv(a[:, :2]).T

    def visibility(self, texture_points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(T, N) bool: inside the image and at least ``margin`` pixels outside the occluder (negative: inside)."""
        pos = self.project(texture_points)
        x, y = pos[..., 0], pos[..., 1]
        inside = (x >= 0) & (x <= self.width - 1) & (y >= 0) & (y <= self.height - 1)
        if self.occluder_boxes is None:
            return inside
        box = self.occluder_boxes[:, None, :]
        covered = (
            (x >= box[..., 0] - margin)
            & (x <= box[..., 2] + margin)
            & (y >= box[..., 1] - margin)
            & (y <= box[..., 3] + margin)
        )
        return inside & ~covered
