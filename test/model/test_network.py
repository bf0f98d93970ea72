"""DescriptorNet: full-resolution, per-pixel unit-norm output; its config checks."""

import numpy as np
import pytest
import torch

from dense_descriptors_ros.model.backbones import BACKBONES
from dense_descriptors_ros.model.network import ModelConfig, normalize_descriptors


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gives_full_resolution_unit_norm_for_odd_sizes(backbone, make_net):
    net = make_net(backbone, dim=5)
    with torch.inference_mode():
        out = net(torch.rand(3, 3, 37, 53))
    assert out.shape == (3, 5, 37, 53)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_unit_norm_is_per_pixel_for_any_batch_size(make_net):
    # Dense Object Nets divided by a batch-wide norm; ours must not depend on the other images in the batch.
    net = make_net()
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        batch = net(x)
        single = net(x[2:3])
    torch.testing.assert_close(batch[2:3], single, atol=1e-5, rtol=1e-4)


def test_channel_groups_are_normalised_separately_and_whole_vector_unit_norm():
    desc = normalize_descriptors(torch.randn(2, 6, 4, 4), (2, 4))
    np.testing.assert_allclose(desc.norm(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(desc[:, :2].norm(dim=1).numpy(), (2 / 6) ** 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="channel_groups"):
        ModelConfig(descriptor_dim=6, channel_groups=(2, 3))


def test_config_rejects_unknown_backbone_and_dim():
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="vgg")
    with pytest.raises(ValueError, match="descriptor_dim"):
        ModelConfig(descriptor_dim=0)


def test_forward_rejects_wrong_channels(make_net):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        make_net()(torch.rand(1, 1, 32, 32))
