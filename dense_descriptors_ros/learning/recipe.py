"""A training recipe: TrainConfig (the sections of a training/*.yaml file) and the datasets it describes.

``build_datasets`` turns the recipe's inputs (videos, image folders, bags, optional mask folders) into a training
and a held-out PairDataset; ``datasets_from_clips`` does the same for clips already in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dense_descriptors_ros.config import ConfigError, load_yaml
from dense_descriptors_ros.io.frame_sources import is_rosbag
from dense_descriptors_ros.learning.augment import AugmentConfig, PairAugmentation
from dense_descriptors_ros.learning.dataset import PairDataset, VideoClip, load_clip
from dense_descriptors_ros.learning.flow import FlowConfig, FlowLabeler
from dense_descriptors_ros.learning.geometry_labels import LABEL_SOURCES
from dense_descriptors_ros.learning.loss import LossConfig
from dense_descriptors_ros.learning.masks import MASK_KINDS
from dense_descriptors_ros.learning.sampling import PairSampler, SamplerConfig
from dense_descriptors_ros.model.network import ModelConfig

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "step", "constant")


@dataclass
class OptimizerConfig:
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate", "range": (1e-7, 1.0)})
    encoder_lr: float = field(
        default=0.0,
        metadata={
            "help": "learning rate of a fused network's ImageNet encoder when model.semantic_trainable (0: lr); a "
            "tenth of lr or less keeps the prior",
            "range": (0.0, 1.0),
        },
    )
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay", "range": (0.0, 1.0)})
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule", "choices": SCHEDULES})
    step_epochs: int = field(default=4, metadata={"help": "step schedule: epochs between decays", "range": (1, 1000)})
    step_gamma: float = field(default=0.5, metadata={"help": "step schedule: decay factor", "range": (0.0, 1.0)})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 disables", "range": (0.0, 1e6)})

    def __post_init__(self) -> None:
        if self.schedule == "cosine" and 0 < self.encoder_lr < 0.01 * self.lr:
            raise ConfigError(
                f"optimizer.encoder_lr ({self.encoder_lr:g}) must be at least lr / 100 ({0.01 * self.lr:g}): the "
                "cosine schedule ends every group at lr / 100"
            )


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(backbone="resnet34"))
    flow: FlowConfig = field(default_factory=FlowConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    labels: str = field(
        default="flow",
        metadata={
            "help": "where matches come from: flow (optical flow chained over the pair gap), geometry (depth + poses "
            "of each input folder, exact over wide gaps: learning/geometry_labels.py); the gaps are flow.chain_min.."
            "flow.chain either way",
            "choices": LABEL_SOURCES,
        },
    )
    masks: str = field(
        default="none",
        metadata={"help": "object masks: none (whole scene), folder (--masks), motion", "choices": MASK_KINDS},
    )
    epochs: int = field(default=10, metadata={"help": "training epochs (papers/000: about 10)", "range": (1, 10000)})
    steps_per_epoch: int = field(
        default=0,
        metadata={"help": "optimiser steps per epoch; 0: one pass over the training pairs", "range": (0, 10**7)},
    )
    batch_size: int = field(default=2, metadata={"help": "image pairs per step", "range": (1, 256)})
    image_height: int = field(default=240, metadata={"help": "frames are resized to this height", "range": (32, 4096)})
    image_width: int = field(default=320, metadata={"help": "frames are resized to this width", "range": (32, 4096)})
    frame_stride: int = field(default=1, metadata={"help": "keep every n-th frame of the input", "range": (1, 1000)})
    max_frames: int = field(default=0, metadata={"help": "frames read per input; 0: all", "range": (0, 10**7)})
    topic: str = field(default="", metadata={"help": "image topic of a rosbag2 input; empty: its only one"})
    seed: int = field(
        default=0, metadata={"help": "seed of weights, sampling and augmentation", "range": (0, 2**31 - 1)}
    )
    amp: bool = field(default=True, metadata={"help": "mixed precision (CUDA only; ignored on CPU)"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes", "range": (0, 64)})
    fit_semantic_projection: bool = field(
        default=True,
        metadata={
            "help": "fused networks: fit the semantic part's projection (PCA of the frozen features) on the training "
            "frames before training; off: keep the shipped one"
        },
    )
    encoder_cache_mb: int = field(
        default=2048,
        metadata={
            "help": "fused networks with a frozen encoder: megabytes of encoder features kept, so each distinct "
            "training image is encoded once (0: no cache)",
            "range": (0, 1 << 20),
        },
    )
    val_pairs: int = field(default=8, metadata={"help": "held-out pairs used for validation", "range": (1, 100000)})
    val_points: int = field(default=500, metadata={"help": "query points per validation pair", "range": (1, 100000)})
    label_quality_pairs: int = field(
        default=8,
        metadata={
            "help": "training pairs per gap whose flow labels are measured before training (label_quality.csv); 0: "
            "skip",
            "range": (0, 10000),
        },
    )
    keep_epoch_checkpoints: bool = field(default=False, metadata={"help": "also keep a checkpoint folder per epoch"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})

    def __post_init__(self) -> None:
        groups = self.sampler.num_groups
        if groups > 1 and self.model.architecture == "fused":
            parts = (self.model.semantic_dim, self.model.fine_dim)
            if groups != 2 or not self.model.fine_dim:
                raise ConfigError("a fused network takes two negative bands: the semantic part's and the fine part's")
            self.model = replace(self.model, channel_groups=parts)
        elif groups > 1 and len(self.model.channel_groups) != groups:
            if self.model.descriptor_dim % groups:
                raise ConfigError(
                    f"{groups} negative bands need model.channel_groups, or a descriptor_dim divisible by {groups}"
                )
            split = (self.model.descriptor_dim // groups,) * groups
            self.model = replace(self.model, channel_groups=split)
        if groups == 1 and len(self.model.channel_groups) > 1:
            raise ConfigError(
                f"model.channel_groups {list(self.model.channel_groups)} needs one negative band per group "
                "(sampler.negatives: bands with band_min_px/band_max_px)"
            )

    @property
    def image_size(self) -> tuple[int, int]:
        return self.image_height, self.image_width


def load_train_config(path: str | Path) -> TrainConfig:
    """A training recipe (YAML) as a TrainConfig; errors name the key."""
    return load_yaml(TrainConfig, path)


def build_datasets(
    config: TrainConfig,
    data: list[str | Path],
    mask_folders: list[str | Path] | None = None,
    cache_dir: str | Path = "",
    frame_store: str | Path | None = None,
) -> tuple[PairDataset, PairDataset]:
    """Train and held-out PairDatasets from inputs (videos, image folders, bags) per the recipe.

    A bag that cannot be read (or holds too few frames) is skipped with a warning naming it; any other bad input is
    an error. With ``frame_store`` the frames are kept on disk there rather than in memory (load_clip).
    """
    if config.masks == "folder" and (not mask_folders or len(mask_folders) != len(data)):
        raise ConfigError(f"masks: folder needs one --masks folder per --data input ({len(data)} given)")
    flow = replace(config.flow, cache_dir=str(cache_dir)) if cache_dir and not config.flow.cache_dir else config.flow
    labeler = FlowLabeler(flow)
    frame_options: dict[str, Any] = {"stride": config.frame_stride, "flow_scale": config.flow.scale}
    if config.max_frames:
        frame_options["max_frames"] = config.max_frames
    clips = []
    for k, path in enumerate(data):
        options = dict(frame_options)
        bag = is_rosbag(path)
        if config.topic and bag:
            options["topic"] = config.topic
        folder = mask_folders[k] if config.masks == "folder" and mask_folders else None
        try:
            clips.append(
                load_clip(
                    path,
                    config.image_size,
                    config.masks,
                    folder,
                    labeler,
                    frame_store=frame_store,
                    labels=config.labels,
                    **options,
                )
            )
        except (ValueError, OSError) as exc:
            if not bag:
                raise
            log.warning("skipped the bag %s: %s", path, exc)
    if not clips:
        raise ConfigError(f"none of the {len(data)} input(s) could be read (see the warnings above)")
    return datasets_from_clips(config, clips, labeler)


def datasets_from_clips(
    config: TrainConfig, clips: list[VideoClip], labeler: FlowLabeler | None = None
) -> tuple[PairDataset, PairDataset]:
    """Train (augmented) and held-out (plain) PairDatasets over in-memory clips."""
    labeler = labeler or FlowLabeler(config.flow)
    sampler = PairSampler(config.sampler)
    gaps = config.flow.gaps
    train = PairDataset(clips, labeler, sampler, "train", PairAugmentation(config.augment), gaps, config.seed)
    val = PairDataset(clips, labeler, sampler, "test", None, gaps, config.seed)
    return train, val
