"""The one checkpoint format: a folder with ``weights.pt`` (state dict) and ``model.yaml`` (everything else).

``model.yaml`` holds the model config (backbone, D, input normalisation, channel groups), the image size it was
trained at, free-form training provenance and the SHA-256 of ``weights.pt``. Loading checks all of it and raises
:class:`CheckpointError` naming the file and the mismatch, never a traceback from inside torch. A loaded model
is always in eval mode.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import yaml

from dense_descriptors_ros.config import ConfigError, from_mapping, to_mapping
from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_text
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
META_FILE = "model.yaml"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, corrupt, or does not fit what was asked for."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    folder: str | Path,
    net: DescriptorNet,
    provenance: dict[str, Any] | None = None,
    image_size: tuple[int, int] | None = None,
) -> Path:
    """Write ``net`` to ``folder`` (created if needed); returns the folder. ``image_size`` is (height, width)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    # A crash never leaves a half-written weights file behind (nor a model.yaml without its weights' hash).
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": to_mapping(net.config),
        "image_size": list(image_size) if image_size else None,
        "provenance": provenance or {},
        "weights_sha256": _sha256(weights),
    }
    atomic_write_text(folder / META_FILE, yaml.safe_dump(meta, sort_keys=False))
    return folder


def read_model_meta(folder: str | Path) -> dict[str, Any]:
    """The parsed, validated ``model.yaml`` of a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing; a checkpoint folder holds {WEIGHTS_FILE} and {META_FILE}")
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{meta_path}: not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: expected a mapping, got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: format_version is {version!r}, this package reads {FORMAT_VERSION}")
    for key in ("model", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: required key {key!r} is missing")
    return meta


def model_id(folder: str | Path) -> str:
    """A short id of a checkpoint's weights (first 12 hex digits of their hash), e.g. to tag SLAM maps."""
    return str(read_model_meta(folder)["weights_sha256"])[:12]


def read_model_config(folder: str | Path, meta: dict[str, Any] | None = None) -> ModelConfig:
    """The ModelConfig of a checkpoint folder (its ``model.yaml``, or the already read ``meta``), weights untouched."""
    meta = read_model_meta(folder) if meta is None else meta
    try:
        return from_mapping(ModelConfig, {**meta["model"], "pretrained": False})
    except (ConfigError, ValueError, TypeError) as exc:
        known = [f.name for f in fields(ModelConfig)]
        raise CheckpointError(f"{Path(folder) / META_FILE}: invalid model section ({exc}); keys are {known}") from None


def load_checkpoint(
    folder: str | Path,
    device: str | torch.device = "cpu",
    expected_descriptor_dim: int | None = None,
) -> DescriptorNet:
    """Load a checkpoint folder into a DescriptorNet in eval mode on ``device``."""
    folder = Path(folder)
    meta = read_model_meta(folder)
    meta_path = folder / META_FILE
    config = read_model_config(folder, meta)
    if expected_descriptor_dim is not None and config.descriptor_dim != expected_descriptor_dim:
        raise CheckpointError(
            f"{meta_path}: descriptor_dim is {config.descriptor_dim}, expected {expected_descriptor_dim}"
        )
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    actual = _sha256(weights)
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"{weights}: content hash {actual[:12]} does not match {meta['weights_sha256'][:12]} recorded in "
            f"{meta_path} (file corrupt or from another checkpoint)"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{weights}: cannot be read as a torch state dict ({exc})") from None
    net = DescriptorNet(config)
    state = _with_body_prefix(state)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: does not fit a {config.backbone} DescriptorNet: "
            f"{len(missing)} missing key(s) {missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{weights}: {key} has shape {tuple(tensor.shape)}, a {config.backbone} DescriptorNet with "
                f"D={config.descriptor_dim} needs {tuple(expected[key].shape)}"
            )
    net.load_state_dict(state)
    return net.to(device).eval()


def _with_body_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints written before DescriptorNet had architectures keep their layers at the top level."""
    if any(key.startswith("body.") for key in state):
        return state
    return {f"body.{key}": value for key, value in state.items()}
