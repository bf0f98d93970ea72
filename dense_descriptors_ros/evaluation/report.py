"""Evaluation reports: a folder with ``figures.json``, ``report.md`` (markdown tables) and PNG plots.

Plots use matplotlib's object API (``matplotlib.figure.Figure``, Agg rendering), so no display and no global
backend switch is needed. The papers' published numbers live here so every report can put them next to ours.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_text

# papers/000 Table 1 (test 2): mean error percentile (%), train/test x same/different background grid.
# The extraction lost the decimal points of "Ours, same background" ("39 8.0 32"); 3.9 and 3.2 are our reading.
PAPER_000_TABLE1 = {
    "SIFT": {
        "same_background": {"train-train": 61.2, "train-test": 56.9, "test-test": 45.8},
        "different_background": {"train-train": 61.6, "train-test": 46.0, "test-test": 39.2},
    },
    "ours": {
        "same_background": {"train-train": 3.9, "train-test": 8.0, "test-test": 3.2},
        "different_background": {"train-train": 4.2, "train-test": 1.1, "test-test": 1.2},
    },
}
# papers/000 Table 2 (test 1): error percentile (%) between consecutive frames, mean and std over 100 pairs.
PAPER_000_TABLE2 = {
    "drill": {"SIFT": {"mean": 37.0, "std": 16.4}, "ours": {"mean": 0.5, "std": 0.5}},
    "hulk": {"SIFT": {"mean": 9.5, "std": 4.8}, "ours": {"mean": 1.6, "std": 1.9}},
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` (numpy values allowed) as indented JSON."""
    path = Path(path)
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
    return path


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """A GitHub markdown table with one row per mapping; missing cells show '–', floats ``digits`` decimals."""
    if not columns:
        raise ValueError("a table needs at least one column")
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(c), digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def plot_cumulative_curves(
    curves: Mapping[str, np.ndarray], path: str | Path, xlabel: str, title: str = "", x_max: float | None = None
) -> Path:
    """Cumulative distribution (share of values <= x) of each named array, e.g. per-pixel error percentiles."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, values in curves.items():
        values = np.sort(np.asarray(values, dtype=float).ravel())
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of points")
    if x_max is not None:
        ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    return _save(fig, Path(path))


def plot_histograms(
    values: Mapping[str, np.ndarray], path: str | Path, xlabel: str, title: str = "", bins: int = 50
) -> Path:
    """Overlaid histograms (shared bins) of each named array."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    arrays = {k: np.asarray(v, dtype=float).ravel() for k, v in values.items()}
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] or [np.zeros(1)])
    edges = np.histogram_bin_edges(finite if len(finite) else np.zeros(1), bins=bins)
    for name, array in arrays.items():
        ax.hist(array[np.isfinite(array)], bins=edges, alpha=0.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    return _save(fig, Path(path))


def plot_trajectories(
    trajectories: Mapping[str, np.ndarray], path: str | Path, axes: tuple[int, int] = (0, 2), title: str = ""
) -> Path:
    """Top view of (N, 3) position arrays on two axes (default x and z, the ground plane of camera frames)."""
    names = "xyz"
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    for name, positions in trajectories.items():
        positions = np.asarray(positions, dtype=float)
        ax.plot(positions[:, axes[0]], positions[:, axes[1]], label=name)
    ax.set_xlabel(f"{names[axes[0]]} [m]")
    ax.set_ylabel(f"{names[axes[1]]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    return _save(fig, Path(path))


class Report:
    """Collects figures, tables and plots for one evaluation run and writes them into ``folder``."""

    def __init__(self, folder: str | Path, title: str, command: str = "") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.command = command
        self.figures: dict[str, Any] = {}
        self._sections: list[str] = []

    def plot_path(self, name: str) -> Path:
        """Where a plot called ``name`` (no extension) goes."""
        return self.folder / f"{name}.png"

    def add_figures(self, key: str, figures: Any) -> None:
        self.figures[key] = figures

    def add_table(
        self, heading: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], note: str = "", digits: int = 3
    ) -> None:
        text = f"## {heading}\n\n{markdown_table(rows, columns, digits)}\n"
        self._sections.append(text + (f"\n{note}\n" if note else ""))

    def add_text(self, text: str) -> None:
        self._sections.append(text.rstrip() + "\n")

    def add_plot(self, path: Path, caption: str) -> None:
        self._sections.append(f"![{caption}]({Path(path).name})\n")

    def write(self) -> Path:
        """Write figures.json and report.md; returns the report.md path."""
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_json(
            self.folder / "figures.json",
            {"title": self.title, "date": date, "command": self.command, "figures": self.figures},
        )
        header = f"# {self.title}\n\nDate: {date}\n" + (f"\nCommand: `{self.command}`\n" if self.command else "")
        path = self.folder / "report.md"
        atomic_write_text(path, "\n".join([header, *self._sections]))
        return path
