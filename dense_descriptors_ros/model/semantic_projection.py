"""The fixed projection of the fused network's semantic part: a PCA basis of frozen ImageNet features.

``fit_semantic_projection`` computes it deterministically from a set of images (float64 SVD of a fixed pixel
sample, each basis vector's sign fixed so its largest component is positive) and writes it into the network.
The package ships the basis fitted on its own rendered training scenes (``model/data/``, made by
``dense-descriptors pretrained --refit``), so the out-of-the-box model needs no rendering and no training.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dense_descriptors_ros.model.network import DescriptorNet

DATA_DIR = Path(__file__).resolve().parent / "data"


def shipped_projection_file(net: DescriptorNet) -> Path:
    """Where the package keeps the fitted basis for this network's encoder, taps and semantic size."""
    c = net.config
    taps = "-".join(str(t) for t in c.semantic_taps)
    return DATA_DIR / f"semantic_projection_{c.backbone}_taps{taps}_d{c.semantic_dim}.npz"


def _fused_body(net: DescriptorNet) -> Any:
    if net.config.architecture != "fused":
        raise ValueError(f"a semantic projection belongs to a fused network, not {net.config.architecture!r}")
    return net.body


@torch.inference_mode()
def fit_semantic_projection(
    net: DescriptorNet, images: Iterable[np.ndarray], max_pixels: int = 200_000, seed: int = 0
) -> float:
    """Fit the PCA basis on uint8 RGB ``images`` and store it in ``net``; returns the explained variance share."""
    body = _fused_body(net)
    body.eval()
    features = []
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
        prepared = net.prepare(x.to(body.projection.device))
        rows, cols = net.output_size(*x.shape[-2:])
        size = (prepared.shape[-2] // body.output_stride, prepared.shape[-1] // body.output_stride)
        raw = body.semantic_features(body.encoder_features(prepared), size)[0, :, :rows, :cols]
        features.append(raw.flatten(1).T.double().cpu())
    if not features:
        raise ValueError("fitting a semantic projection needs at least one image")
    samples = torch.cat(features)
    if len(samples) > max_pixels:
        keep = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[:max_pixels]
        samples = samples[keep]
    mean = samples.mean(0)
    _, singular, vt = torch.linalg.svd(samples - mean, full_matrices=False)
    basis = vt[: body.semantic_dim]
    signs = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True)))
    basis = basis * signs
    body.projection_mean.copy_(mean.float())
    body.projection.copy_(basis.float())
    variance = singular**2
    return float(variance[: body.semantic_dim].sum() / variance.sum())


def save_projection(net: DescriptorNet, path: str | Path, **provenance: Any) -> Path:
    """Write ``net``'s semantic basis (and how it was made) to an ``.npz`` file."""
    body = _fused_body(net)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        mean=body.projection_mean.cpu().numpy(),
        basis=body.projection.cpu().numpy(),
        provenance=np.array(repr(sorted(provenance.items()))),
    )
    tmp.replace(path)
    return path


def load_projection(net: DescriptorNet, path: str | Path | None = None) -> Path:
    """Put the basis stored in ``path`` (default: the shipped one for this network) into ``net``."""
    body = _fused_body(net)
    path = Path(path) if path else shipped_projection_file(net)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no semantic projection for this network; fit one with `dense-descriptors pretrained --refit`"
        )
    with np.load(path) as stored:
        mean, basis = stored["mean"], stored["basis"]
    if basis.shape != tuple(body.projection.shape):
        raise ValueError(f"{path}: basis of shape {basis.shape}, the network needs {tuple(body.projection.shape)}")
    body.projection_mean.copy_(torch.from_numpy(mean))
    body.projection.copy_(torch.from_numpy(basis))
    return path
