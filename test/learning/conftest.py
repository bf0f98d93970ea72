"""Fixtures of the learning tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def tiny_fused_model() -> dict[str, Any]:
    """The model section of a recipe for a small fused network (frozen MobileNetV2 taps at strides 8 and 16, 8 + 8
    dimensions), quick to train on the CPU; tests add the keys they need."""
    return {"architecture": "fused", "semantic_taps": [8, 16], "semantic_dim": 8, "fine_dim": 8, "descriptor_dim": 16}
