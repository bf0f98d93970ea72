"""Suites evaluate on shrunk images and report in original pixels.

Images are shrunk so their longer side is at most ``--max-side`` (descriptors of every method are computed on the same
shrunk images); points move between original and shrunk pixels with pixel centres at integers in both, and pixel
errors are converted back to and reported in original-image pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from dense_descriptors_ros.evaluation.baselines import DescriptorMethod


def shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Image resized so max(H, W) <= max_side, and the (sx, sy) scale from original to resized pixels."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, (1.0, 1.0)
    scale = max_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA), (new_w / w, new_h / h)


def to_resized(pts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Original-pixel (x, y) -> resized-pixel coordinates (pixel centres at integers in both)."""
    return (pts + 0.5) * np.asarray(scale) - 0.5


def to_original(pts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return (pts + 0.5) / np.asarray(scale) - 0.5


def shrunk_descriptors(
    method: DescriptorMethod, image: np.ndarray, max_side: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """``method``'s descriptors of ``image`` shrunk to ``max_side``, and the original-to-shrunk scale."""
    small, scale = shrink(image, max_side)
    return method.compute(small), scale
