"""Distance between unit descriptors, from their similarity (numpy or torch)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def descriptor_distance(similarity: Array) -> Array:
    """L2 distance between unit vectors from their cosine similarity: sqrt(2 - 2 s), in [0, 2]."""
    if isinstance(similarity, torch.Tensor):
        return torch.sqrt((2.0 - 2.0 * similarity).clamp_min(0.0))
    return np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0))
