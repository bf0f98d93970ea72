"""Training speed and what a few minutes of training buy, on this machine's CPU (or its GPU when there is one).

Run: `.venv/bin/pytest -m bench -s benchmarks/test_bench_training.py` (DDR_BENCH_TRAIN_MINUTES, default 2, sets
the training budget). Prints one JSON line:
- flow labelling ms/pair (DIS and Farneback, forward + backward + consistency check) at 320x240;
- training pairs/s for MobileNetV2 and ResNet-34 at 320x240 with the paper's sampling (2500 matches x 150);
- the held-out mean error percentile (papers/000 section 4) after N minutes of training (ResNet-18 from scratch,
  128x96, so that a CPU gets somewhere in minutes) on a generated sequence, next to the same network untrained and
  to dense SIFT, all on the same held-out pairs.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_descriptors_ros.config import from_mapping
from dense_descriptors_ros.evaluation.baselines import DenseSift
from dense_descriptors_ros.learning.dataset import VideoClip
from dense_descriptors_ros.learning.flow import FlowConfig, FlowLabeler
from dense_descriptors_ros.learning.masks import MaskProvider
from dense_descriptors_ros.learning.recipe import TrainConfig, datasets_from_clips
from dense_descriptors_ros.learning.trainer import Trainer
from dense_descriptors_ros.metrics.error_percentile import error_percentiles
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

pytestmark = pytest.mark.bench
HEIGHT, WIDTH = 240, 320
MINUTES = float(os.environ.get("DDR_BENCH_TRAIN_MINUTES", "2"))


class GroundTruthMasks(MaskProvider):
    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks

    def mask(self, index: int, frame: np.ndarray) -> np.ndarray:
        return self.masks[index]


def _config(backbone: str, cache_dir: Path, size: tuple[int, int], **extra: object) -> TrainConfig:
    return from_mapping(
        TrainConfig,
        {
            "model": {"backbone": backbone, "pretrained": True, "descriptor_dim": 16},
            "flow": {"cache_dir": str(cache_dir)},
            "optimizer": {"lr": 1e-4},
            "batch_size": 1,
            "image_height": size[0],
            "image_width": size[1],
            "masks": "folder",
            "val_pairs": 6,
            "val_points": 400,
            "steps_per_epoch": 10**6,
            **extra,
        },
    )


def _flow_ms(frames: list[np.ndarray], method: str) -> float:
    labeler = FlowLabeler(FlowConfig(method=method))
    labeler.label(frames[0], frames[1])  # warm-up
    start = time.perf_counter()
    pairs = 6
    for k in range(pairs):
        labeler.label(frames[k], frames[k + 1])
    return 1000 * (time.perf_counter() - start) / pairs


def _pairs_per_second(trainer: Trainer, steps: int = 4) -> float:
    """Steady-state training speed: flow labels already in the disk cache (as from epoch 2 on)."""
    for index in range(len(trainer.train_set)):
        trainer.train_set.label(index)
    batches = iter(trainer.epoch_batches())
    trainer.train_step(next(batches))  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def _sift_error(trainer: Trainer) -> float:
    sift = DenseSift()
    values = []
    for index in trainer.validation_indices():
        c, i, j = trainer.val_set.pairs[index]
        item = trainer.val_set[index]
        valid = item["match_valid"].numpy()
        frames = trainer.val_set.clips[c].frames
        pts_a, pts_b = item["matches_a"].numpy()[valid][:400], item["matches_b"].numpy()[valid][:400]
        values.append(error_percentiles(sift.compute(frames[i]), sift.compute(frames[j]), pts_a, pts_b))
    return float(np.concatenate(values).mean())


def test_training_speed_and_error_percentile_after_minutes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    video = textured_object_video(num_frames=40, height=HEIGHT, width=WIDTH, seed=0, max_step_px=5.0)
    clip = VideoClip("synthetic", video.frames, GroundTruthMasks(video.masks))
    figures: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes on the machine slow every figure
        "image_size": f"{WIDTH}x{HEIGHT}",
        "flow_ms_per_pair": {m: round(_flow_ms(video.frames, m), 1) for m in ("dis", "farneback")},
    }
    speeds = {}
    for backbone in ("mobilenet_v2", "resnet34"):
        config = _config(backbone, tmp_path / "flow_cache", (HEIGHT, WIDTH))
        trainer = Trainer(config, *datasets_from_clips(config, [clip]), tmp_path / backbone)
        speeds[backbone] = round(_pairs_per_second(trainer), 3)
    figures["train_pairs_per_s"] = speeds
    figures["device"] = str(trainer.device)

    # What N minutes buy: a small ResNet-18 from scratch on the same sequence at 128x96 (CPU-sized), held out.
    small = textured_object_video(num_frames=40, height=96, width=128, seed=0)
    small_clip = VideoClip("synthetic", small.frames, GroundTruthMasks(small.masks))
    overrides = {
        "model": {"backbone": "resnet18", "pretrained": False, "descriptor_dim": 16},
        "optimizer": {"lr": 3e-3},
    }
    config = _config("resnet18", tmp_path / "flow_cache", (96, 128), **overrides)
    trainer = Trainer(config, *datasets_from_clips(config, [small_clip]), tmp_path / "timed")
    untrained = trainer.validate()["mean_error_percentile"]
    deadline, steps = time.perf_counter() + 60 * MINUTES, 0
    for batch in trainer.epoch_batches():
        trainer.train_step(batch)
        steps += 1
        if time.perf_counter() > deadline:
            break
    trained = trainer.validate()["mean_error_percentile"]
    figures["error_percentile_128x96"] = {
        f"resnet18_after_{MINUTES:g}_min": round(trained, 2),
        "resnet18_untrained": round(untrained, 2),
        "dense_sift": round(_sift_error(trainer), 3),
        "steps": steps,
    }
    print(json.dumps(figures))
    assert trained < untrained
