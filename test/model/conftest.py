"""Fixtures shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig


@pytest.fixture
def make_net() -> Callable[..., DescriptorNet]:
    """Factory of seeded, untrained networks in eval mode: ``make_net(backbone="mobilenet_v2", dim=8, **config)``."""

    def make(backbone: str = "mobilenet_v2", dim: int = 8, **config) -> DescriptorNet:
        torch.manual_seed(0)
        return DescriptorNet(ModelConfig(backbone=backbone, descriptor_dim=dim, pretrained=False, **config)).eval()

    return make
