"""Fixtures shared by the io tests."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest


@pytest.fixture
def blob_texture() -> Callable[..., np.ndarray]:
    """``blob_texture(seed, h=120, w=160)``: random RGB blobs, smooth enough that blur and shifts show."""

    def make(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)

    return make


@pytest.fixture
def keep_all() -> dict[str, float]:
    """RecordingConfig settings that keep every frame (no rate limit, no duplicate or blur test)."""
    return {"max_rate": 0.0, "min_motion": 0.0, "blur_ratio": 0.0}
