"""Fixed-PCA colouring of descriptor images that does not flicker from frame to frame.

The PCA basis and the colour range are fitted once (on the first frame, or on a set of frames) and then kept,
so a given descriptor always gets the same colour (Dense Object Nets PR #62 uses dataset-wide scaling for the
same reason; SAND issue #3 asks for a deterministic visualisation).
"""

from __future__ import annotations

import numpy as np


class DescriptorColorizer:
    """Maps (H, W, D) descriptors to uint8 RGB with a PCA basis and range fixed at the first call to ``fit``."""

    def __init__(self, sample_pixels: int = 20000, seed: int = 0) -> None:
        self.sample_pixels = sample_pixels
        self._rng = np.random.default_rng(seed)
        self.mean: np.ndarray | None = None
        self.basis: np.ndarray | None = None  # (D, 3)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.basis is not None

    def fit(self, descriptors: np.ndarray | list[np.ndarray]) -> DescriptorColorizer:
        """Fit the basis and the 1st-99th percentile range on one descriptor image or a list of them."""
        images = descriptors if isinstance(descriptors, list) else [descriptors]
        flat = np.concatenate([np.asarray(d, np.float32).reshape(-1, d.shape[-1]) for d in images])
        flat = flat[np.isfinite(flat).all(axis=1)]
        if flat.shape[0] < 3:
            raise ValueError("need at least 3 finite descriptor pixels to fit the colouring")
        if flat.shape[0] > self.sample_pixels:
            flat = flat[self._rng.choice(flat.shape[0], self.sample_pixels, replace=False)]
        self.mean = flat.mean(axis=0)
        centred = flat - self.mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        basis = np.zeros((flat.shape[1], 3), np.float32)
        k = min(3, vt.shape[0])
        basis[:, :k] = vt[:k].T
        # SVD signs are arbitrary: fix them so refits on similar data give the same colours.
        signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(3)])
        basis *= np.where(signs == 0, 1, signs)
        self.basis = basis
        projected = centred @ basis
        self.low = np.percentile(projected, 1, axis=0)
        self.high = np.percentile(projected, 99, axis=0)
        return self

    def __call__(self, descriptors: np.ndarray) -> np.ndarray:
        """(H, W, D) -> uint8 RGB (H, W, 3); fits on this frame if not fitted yet. NaN pixels become black."""
        descriptors = np.asarray(descriptors, np.float32)
        if descriptors.ndim != 3:
            raise ValueError(f"expected (H, W, D) descriptors, got shape {descriptors.shape}")
        if not self.fitted:
            self.fit(descriptors)
        if descriptors.shape[-1] != self.basis.shape[0]:
            raise ValueError(f"colouring was fitted for D={self.basis.shape[0]}, got D={descriptors.shape[-1]}")
        projected = (descriptors - self.mean) @ self.basis
        span = np.maximum(self.high - self.low, 1e-6)
        scaled = np.nan_to_num(np.clip((projected - self.low) / span, 0.0, 1.0), nan=0.0)
        rgb = (scaled * 255.0 + 0.5).astype(np.uint8)
        rgb[~np.isfinite(descriptors).all(axis=-1)] = 0
        return rgb
