"""Which network a node or command runs: the settings shared by everything that computes descriptors."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dense_descriptors_ros.model.backbones import BACKBONES
from dense_descriptors_ros.model.checkpoint import model_id, read_model_config, read_model_meta
from dense_descriptors_ros.model.engine import DescriptorEngine, resolve_device
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.model.omp_wait import DEFAULT_OMP_WAIT_POLICY, OMP_WAIT_POLICIES
from dense_descriptors_ros.model.pretrained import PRETRAINED_CONFIG, pretrained_fingerprint, pretrained_network
from dense_descriptors_ros.model.runtimes import RUNTIMES, choose_runtime

UNTRAINED = "untrained"  # model_dir value for a network with random weights (tests only)


@dataclass
class DescriptorSourceConfig:
    model_dir: str = field(
        default="",
        metadata={
            "help": "checkpoint folder (weights.pt + model.yaml); empty: the out-of-the-box model (ImageNet features, "
            "no training); 'untrained': a random network (tests only). Nodes take a new one while running (set it or "
            "call ~/load_model): loaded in the background, swapped in between two frames"
        },
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})
    runtime: str = field(
        default="auto",
        metadata={
            "help": "what runs the network: torch, or its ONNX export in onnxruntime or openvino (CPU only; the "
            "graph is cached in the checkpoint's runtime_cache/, else in ~/.cache/dense_descriptors_ros); auto: torch "
            "on CUDA, else the fastest installed (openvino, onnxruntime, torch)",
            "choices": RUNTIMES,
        },
    )
    num_threads: int = field(
        default=2,
        metadata={
            "help": "CPU threads of the network (0: the runtime's default, all cores); with torch, process-wide",
            "range": (0, 256),
        },
    )
    omp_wait_policy: str = field(
        default=DEFAULT_OMP_WAIT_POLICY,
        metadata={
            "help": "passive: idle inference threads sleep (cores shared with other nodes); active: they spin "
            "(a little faster on idle cores, far slower under load). torch reads it once, at import: it takes "
            "effect when given at start (node parameter or command-line option), not when changed later",
            "choices": OMP_WAIT_POLICIES,
        },
    )
    max_side: int = field(
        default=640,
        metadata={
            "help": "shrink images so the longer side is at most this before inference (0 = never)",
            "range": (0, 8192),
        },
    )
    untrained_backbone: str = field(
        default="mobilenet_v2",
        metadata={"help": "encoder of the random network used when model_dir is 'untrained'", "choices": BACKBONES},
    )
    untrained_descriptor_dim: int = field(
        default=16,
        metadata={"help": "D of the random network used when model_dir is 'untrained'", "range": (1, 256)},
    )

    def check_model(self) -> None:
        """Fail early (ValueError naming the file) if model_dir or device cannot work."""
        choose_runtime(self.runtime, resolve_device(self.device))
        if self.model_dir and self.model_dir != UNTRAINED:
            read_model_meta(self.model_dir)


def model_fingerprint(config: DescriptorSourceConfig) -> str:
    """A short id of the descriptor space ``config`` gives (two equal ids: descriptors that can be compared)."""
    if config.model_dir == UNTRAINED:
        return f"untrained-{config.untrained_backbone}-d{config.untrained_descriptor_dim}"
    if config.model_dir:
        return model_id(config.model_dir)
    return f"pretrained-{pretrained_fingerprint()}"


def model_output_stride(config: DescriptorSourceConfig) -> int:
    """The output stride of the network ``config`` names, read without loading weights (ValueError naming the file
    when model_dir's model.yaml is unreadable)."""
    if config.model_dir == UNTRAINED:
        return ModelConfig.output_stride
    if config.model_dir:
        return read_model_config(config.model_dir).output_stride
    return PRETRAINED_CONFIG.output_stride


def open_engine(config: DescriptorSourceConfig, logger: Any = None) -> DescriptorEngine:
    """The engine for ``config``: the checkpoint in model_dir, the out-of-the-box model, or a random network."""
    logger = logger or logging.getLogger(__name__)
    options = {
        "device": config.device,
        "max_side": config.max_side,
        "runtime": config.runtime,
        "num_threads": config.num_threads,
        "omp_wait_policy": config.omp_wait_policy,
    }
    if config.model_dir == UNTRAINED:
        logger.warning("model_dir is 'untrained': running a RANDOM network (descriptors are not meaningful)")
        net = DescriptorNet(
            ModelConfig(backbone=config.untrained_backbone, descriptor_dim=config.untrained_descriptor_dim)
        )
        return DescriptorEngine(net, **options)
    if config.model_dir:
        engine = DescriptorEngine.from_checkpoint(config.model_dir, **options)
        logger.info(f"loaded model {config.model_dir} on {engine.device} ({engine.runtime})")
        return engine
    engine = DescriptorEngine(pretrained_network(), **options)
    logger.info(
        f"model_dir is empty: running the out-of-the-box model (ImageNet features) on {engine.device} "
        f"({engine.runtime})"
    )
    return engine


def check_engine(engine: DescriptorEngine, where: str) -> None:
    """One small inference on a fixed noise image; ValueError naming ``where`` when the output is not D finite,
    unit-length descriptors (e.g. NaN weights), before a running node swaps ``engine`` in."""
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    descriptors = engine.compute(image)
    if descriptors.shape[-1] != engine.descriptor_dim or not np.isfinite(descriptors).all():
        raise ValueError(
            f"{where}: a test inference gave descriptors of shape {descriptors.shape} (D {engine.descriptor_dim} "
            f"expected) with {int((~np.isfinite(descriptors)).sum())} non-finite value(s); check the checkpoint"
        )


def free_device_memory() -> None:
    """Collect dropped models and give cached GPU memory back (after a node drops its engine on deactivate)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
