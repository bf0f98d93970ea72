"""Fixtures shared by the metrics tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture
def random_descriptors() -> Callable[..., np.ndarray]:
    """Factory of random unit-norm (H, W, D) descriptor images: ``random_descriptors(h, w, d, seed=0)``."""

    def make(h: int, w: int, d: int, seed: int = 0) -> np.ndarray:
        desc = np.random.default_rng(seed).normal(size=(h, w, d)).astype(np.float32)
        return desc / np.linalg.norm(desc, axis=2, keepdims=True)

    return make
