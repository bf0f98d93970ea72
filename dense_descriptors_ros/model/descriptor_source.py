"""Which network a node or command runs: the settings shared by everything that computes descriptors."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from dense_descriptors_ros.model.backbones import BACKBONES
from dense_descriptors_ros.model.checkpoint import read_model_meta
from dense_descriptors_ros.model.engine import DescriptorEngine, resolve_device
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig


@dataclass
class DescriptorSourceConfig:
    model_dir: str = field(
        default="",
        metadata={
            "help": "checkpoint folder (weights.pt + model.yaml); empty runs an untrained network (for testing only)"
        },
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    max_side: int = field(
        default=640,
        metadata={
            "help": "shrink images so the longer side is at most this before inference (0 = never)",
            "range": (0, 8192),
        },
    )
    untrained_backbone: str = field(
        default="mobilenet_v2",
        metadata={"help": "encoder of the untrained network used when model_dir is empty", "choices": BACKBONES},
    )
    untrained_descriptor_dim: int = field(
        default=16, metadata={"help": "D of the untrained network used when model_dir is empty", "range": (1, 256)}
    )

    def check_model(self) -> None:
        """Fail early (ValueError naming the file) if model_dir or device cannot work."""
        resolve_device(self.device)
        if self.model_dir:
            read_model_meta(self.model_dir)


def open_engine(config: DescriptorSourceConfig, logger: Any = None) -> DescriptorEngine:
    """The engine for ``config``: the checkpoint in model_dir, or an untrained network with a warning."""
    logger = logger or logging.getLogger(__name__)
    if config.model_dir:
        engine = DescriptorEngine.from_checkpoint(config.model_dir, device=config.device, max_side=config.max_side)
        logger.info(f"loaded model {config.model_dir} on {engine.device}")
        return engine
    logger.warning(
        "model_dir is empty: running an UNTRAINED network (descriptors are not meaningful); "
        "train one with `dense-descriptors train` and set model_dir"
    )
    net = DescriptorNet(ModelConfig(backbone=config.untrained_backbone, descriptor_dim=config.untrained_descriptor_dim))
    return DescriptorEngine(net, device=config.device, max_side=config.max_side)


def free_device_memory() -> None:
    """Collect dropped models and give cached GPU memory back (after a node drops its engine on deactivate)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
