"""The ONNX graph the CPU runtimes run, exported once per network and reused on the next start.

The graph lies in ``runtime_cache/`` inside the checkpoint folder when that folder is writable, else in the user's
cache: ``$DDR_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/dense_descriptors_ros/runtime_cache`` (default
``~/.cache``). Its file name is a hash of the
weights (and buffers), the model config, the input size policy and the exporter (opset, torch version), so a new
checkpoint in the same folder, or a retrained network, gets a new file and never an old graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from dense_descriptors_ros.config import to_mapping
from dense_descriptors_ros.io.atomic_files import atomic_path
from dense_descriptors_ros.model.network import DescriptorNet
from dense_descriptors_ros.model.onnx_export import OPSET, export_onnx

CACHE_FOLDER = "runtime_cache"
# Input size policy of the exported graph: one graph with dynamic batch, height and width (no export per size).
SIZE_POLICY = "dynamic-nhw"
log = logging.getLogger(__name__)
T = TypeVar("T")


def graph_key(net: DescriptorNet) -> str:
    """16 hex digits naming the exported graph of ``net``: they change with any weight, the config or the exporter."""
    digest = hashlib.sha256()
    header = {"config": to_mapping(net.config), "size_policy": SIZE_POLICY, "opset": OPSET, "torch": torch.__version__}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_folder(checkpoint: str | Path | None = None) -> Path:
    """``<checkpoint>/runtime_cache`` (created) when it can be written, else the user's cache folder."""
    if checkpoint is not None:
        folder = Path(checkpoint) / CACHE_FOLDER
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            pass
        else:
            if os.access(folder, os.W_OK):
                return folder
    if os.environ.get("DDR_CACHE_DIR"):
        return Path(os.environ["DDR_CACHE_DIR"])
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(user_cache) / "dense_descriptors_ros" / CACHE_FOLDER


def open_cached_graph(net: DescriptorNet, folder: Path, open_graph: Callable[[Path], T]) -> T:
    """``open_graph(path)`` of ``net``'s ONNX graph in ``folder``, exported first when it is not there. A cached file
    the runtime cannot read (truncated, corrupt) is exported again, with a warning."""
    path = folder / f"descriptor_net-{graph_key(net)}.onnx"
    if path.is_file():
        try:
            return open_graph(path)
        except Exception as exc:  # each runtime has its own error types for a bad model file
            log.warning(f"{path}: the cached graph does not load ({' '.join(str(exc).split())[:200]}); exporting again")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        export_onnx(net, tmp)
    log.info(f"exported the network's ONNX graph to {path}")
    return open_graph(path)
