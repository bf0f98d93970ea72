"""Figures of a training run (matplotlib, Agg backend): per-epoch validation figure, loss curve, descriptor grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dense_descriptors_ros.io.atomic_files import atomic_path
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer


def _image(tensor_or_array: Any) -> np.ndarray:
    array = tensor_or_array.numpy() if hasattr(tensor_or_array, "numpy") else np.asarray(tensor_or_array)
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    return array


def validation_figure(result: dict[str, Any], epoch: int, path: Path) -> Path:
    """Held-out pair: images, query points coloured by error percentile, descriptors, error histogram."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    title = f"epoch {epoch}: held-out mean error percentile {result['mean_error_percentile']:.2f}"
    if result["examples"]:
        image_a, image_b, desc_a, desc_b, pts_a, values = result["examples"][0]
        colorizer = DescriptorColorizer().fit([desc_a, desc_b])
        axes[0].imshow(_image(image_a))
        points = axes[0].scatter(pts_a[:, 0], pts_a[:, 1], c=values, s=4, cmap="viridis_r", vmin=0, vmax=10)
        fig.colorbar(points, ax=axes[0], label="error percentile")
        axes[1].imshow(_image(image_b))
        axes[2].imshow(colorizer(desc_a))
        axes[3].imshow(colorizer(desc_b))
        for ax, name in zip(axes[:4], ("image a + queries", "image b", "descriptors a", "descriptors b"), strict=True):
            ax.set_title(name)
            ax.axis("off")
    if result["errors"].size:
        axes[4].hist(result["errors"], bins=50, range=(0, 50))
    axes[4].set_xlabel("error percentile")
    axes[4].set_ylabel("queries")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path


def loss_curve(history: dict[str, list], path: Path) -> Path:
    """Training loss per step (with a running mean) and held-out mean error percentile per epoch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, left = plt.subplots(figsize=(8, 4.5))
    steps, losses = np.asarray(history["step"]), np.asarray(history["loss"], float)
    if losses.size:
        left.plot(steps, losses, color="tab:blue", alpha=0.3, label="training loss")
        window = max(1, losses.size // 20)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        left.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"running mean ({window})")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend(loc="upper left")
    right = left.twinx()
    if history["val_step"]:
        right.plot(history["val_step"], history["val_error"], "o-", color="tab:red", label="held-out error percentile")
    right.set_ylabel("mean error percentile", color="tab:red")
    right.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def descriptor_grid(frames: Sequence[np.ndarray], descriptors: Sequence[np.ndarray], path: Path) -> Path:
    """Frames (top row) and their descriptors in one fixed PCA colouring (bottom row)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = max(1, len(frames))
    fig, axes = plt.subplots(2, count, figsize=(3 * count, 5), squeeze=False)
    if descriptors:
        colorizer = DescriptorColorizer().fit(list(descriptors))
        for k, (frame, desc) in enumerate(zip(frames, descriptors, strict=True)):
            axes[0, k].imshow(frame)
            axes[1, k].imshow(colorizer(desc))
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path
