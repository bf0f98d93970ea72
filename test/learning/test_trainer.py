"""Trainer: a short run on a generated sequence beats the untrained network on held-out frames; resume; recipes.
The train command is tested in test/cli/test_cli_train.py."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.learning.dataset import VideoClip
from dense_descriptors_ros.learning.masks import MaskProvider
from dense_descriptors_ros.learning.recipe import TrainConfig, datasets_from_clips, load_train_config
from dense_descriptors_ros.learning.trainer import Trainer
from dense_descriptors_ros.model.checkpoint import load_checkpoint
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "model": {"backbone": "resnet18", "pretrained": False, "descriptor_dim": 8},
    "sampler": {"num_matches": 300, "non_matches_per_match": 30},
    "optimizer": {"lr": 0.003},
    "batch_size": 1,
    "image_height": 96,
    "image_width": 128,
    "val_pairs": 3,
    "val_points": 200,
    "masks": "folder",
}


class GroundTruthMasks(MaskProvider):
    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks

    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        return self.masks[index]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_short_training_beats_the_untrained_network_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = textured_object_video(num_frames=24, height=96, width=128, seed=0)
    clip = VideoClip("synthetic", video.frames, GroundTruthMasks(video.masks))
    config = from_mapping(TrainConfig, {**TINY, "epochs": 2, "steps_per_epoch": 7})
    train_set, val_set = datasets_from_clips(config, [clip])
    assert {i for _, i, _ in train_set.pairs} == set(range(11)) and min(i for _, i, _ in val_set.pairs) == 12
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="dense_descriptors_ros.learning.trainer"):
        summary = Trainer(config, train_set, val_set, out).fit()
    assert summary["final_error_percentile"] < summary["untrained_error_percentile"] - 10
    # Label quality of the consecutive training pairs, measured before training: file, plot, log line, summary.
    with (out / "label_quality.csv").open() as f:
        (quality,) = list(csv.DictReader(f))
    assert int(quality["gap"]) == 1 and int(quality["pairs"]) == 8 and (out / "label_quality.png").is_file()
    assert 0.0 < float(quality["cycle_p50"]) <= float(quality["cycle_p90"]) <= float(quality["cycle_p99"])
    kept = summary["label_quality"][1]["kept"]
    assert 0.5 < kept <= 1.0 and kept == pytest.approx(float(quality["kept"]))
    assert [r.getMessage()[:23] for r in caplog.records if "flow labels" in r.getMessage()] == [
        "flow labels, gap 1: cyc"
    ]
    assert summary["final_val_loss"] < summary["untrained_val_loss"]
    for name in ("train_log.csv", "val_log.csv", "loss_curve.png", "descriptor_grid.png", "config.yaml"):
        assert (out / name).is_file(), name
    assert (out / "best" / "loss_curve.png").is_file() and (out / "best" / "descriptor_grid.png").is_file()
    assert sorted(p.name for p in (out / "figures").iterdir()) == [f"val_epoch_{e:03d}.png" for e in range(3)]
    net = load_checkpoint(out / "best")
    assert not net.training and net.config.descriptor_dim == 8
    with (out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 14 and {"loss", "match_loss", "non_match_loss", "hard_negative_fraction", "pairs_per_s"} <= set(
        rows[0]
    )
    # Resume: one more epoch continues the step count and the logs.
    more = from_mapping(TrainConfig, {**TINY, "epochs": 3, "steps_per_epoch": 2})
    trainer = Trainer(more, *datasets_from_clips(more, [clip]), out)
    assert trainer.resume() and trainer.epoch == 2 and trainer.step == 14
    resumed = trainer.fit()
    assert resumed["epochs"] == 3 and resumed["steps"] == 16
    # The first run's cosine had ended: the extra epoch trains at its floor instead of climbing back up.
    floor = TINY["optimizer"]["lr"] * 0.01
    with (out / "train_log.csv").open() as f:
        assert [float(r["lr"]) for r in list(csv.DictReader(f))[14:]] == pytest.approx([floor, floor])
    with (out / "val_log.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3]


def test_recipes_load_and_bad_keys_are_named(tmp_path: Path) -> None:
    scene = load_train_config(REPO / "training" / "scene.yaml")
    assert scene.sampler.negatives == "bands" and scene.model.architecture == "fused"
    assert scene.model.channel_groups == (32, 16) and scene.sampler.band_max_px == [float("inf"), 25.0]
    paper = load_train_config(REPO / "training" / "object.yaml")
    assert paper.model.architecture == "fused" and paper.model.output_stride == 4
    assert (paper.sampler.num_matches, paper.sampler.non_matches_per_match, paper.epochs) == (1500, 50, 10)
    exact = load_train_config(REPO / "training" / "object_geometry.yaml")
    assert (exact.labels, exact.masks, exact.model.semantic_trainable) == ("geometry", "folder", False)
    assert exact.augment.hflip_probability == exact.augment.vflip_probability == 0.0
    flows = {name: load_train_config(REPO / "training" / f"{name}.yaml").flow for name in ("object", "scene", "demo")}
    checks = {name: (f.scale, f.cycle_max_px, f.direct_max_px) for name, f in flows.items()}
    assert checks == {"object": (2, 0.5, 1.0), "scene": (2, 0.5, 0.0), "demo": (1, 0.5, 1.0)}
    (tmp_path / "bad.yaml").write_text("sampler:\n  num_match: 10\n")
    with pytest.raises(ConfigError, match="num_match"):
        load_train_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="channel_groups"):
        from_mapping(TrainConfig, {"model": {"descriptor_dim": 16, "channel_groups": [8, 8]}})


def test_fused_training_trains_the_fine_branch_only_and_caches_the_encoder(
    tmp_path: Path, tiny_fused_model: dict
) -> None:
    video = textured_object_video(num_frames=16, height=96, width=128, seed=1)
    clip = VideoClip("synthetic", video.frames, GroundTruthMasks(video.masks))
    recipe = {
        **TINY,
        "model": {**tiny_fused_model, "output_stride": 4},
        "sampler": {**TINY["sampler"], "negatives": "bands", "band_min_px": [0, 0], "band_max_px": [float("inf"), 12]},
        # No flips: every image is then one of 16 cache entries, so later steps hit the cache.
        "augment": {"brightness": 0.0, "contrast": 0.0, "hflip_probability": 0.0, "vflip_probability": 0.0},
        "epochs": 2,
        "steps_per_epoch": 6,
        "label_quality_pairs": 0,
    }
    config = from_mapping(TrainConfig, recipe)
    assert config.model.channel_groups == (8, 8)  # one negative band per part
    train_set, val_set = datasets_from_clips(config, [clip])
    trainer = Trainer(config, train_set, val_set, tmp_path / "run")
    encoder = {k: v.clone() for k, v in trainer.net.body.encoder.state_dict().items()}
    fine = {k: v.clone() for k, v in trainer.net.body.fine_head.state_dict().items()}
    summary = trainer.fit()
    assert summary["final_val_loss"] < summary["untrained_val_loss"]
    net = load_checkpoint(tmp_path / "run" / "last")
    assert net.config.output_stride == 4 and net.config.fine_dim == 8
    assert all(torch.equal(v, net.body.encoder.state_dict()[k]) for k, v in encoder.items())  # frozen, BN included
    assert any(not torch.equal(v, net.body.fine_head.state_dict()[k]) for k, v in fine.items())
    assert summary["encoder_cache"]["hits"] > summary["encoder_cache"]["misses"] > 0
    # The projection was fitted on the training frames: not the random orthonormal start.
    assert not torch.equal(net.body.projection_mean, torch.zeros_like(net.body.projection_mean))


@pytest.mark.cuda
def test_amp_training_on_cuda_runs_and_saves_a_cpu_loadable_checkpoint(tmp_path: Path) -> None:
    video = textured_object_video(num_frames=16, height=96, width=128, seed=0)
    clip = VideoClip("synthetic", video.frames, GroundTruthMasks(video.masks))
    config = from_mapping(TrainConfig, {**TINY, "epochs": 1, "steps_per_epoch": 4, "batch_size": 2, "device": "cuda"})
    summary = Trainer(config, *datasets_from_clips(config, [clip]), tmp_path / "run").fit()
    assert summary["steps"] == 4 and np.isfinite(summary["last_epoch_train_loss"])
    assert np.isfinite(summary["final_error_percentile"])
    assert load_checkpoint(tmp_path / "run" / "best", device="cpu").descriptor_dim == 8
