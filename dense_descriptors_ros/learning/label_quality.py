"""How trustworthy a run's flow labels are, per pair gap, measured before training on a fixed sample of its pairs.

For every gap: the distribution of the cycle error |F(x) + B(x + F(x))| (the forward label F undone by the backward
label B, in training pixels; the forward-backward error at gap 1) over the object pixels whose label stays in view,
and the share of object pixels whose label survives every check (``kept``). Written as ``label_quality.csv`` (one
row per gap, with a histogram) and ``label_quality.png``. The sample uses the same first frames for every gap, so
the chains share their steps and the disk cache serves training afterwards.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dense_descriptors_ros.io.atomic_files import atomic_path
from dense_descriptors_ros.learning.dataset import PairDataset

# Histogram bins of the cycle error (training pixels); the last bin is open.
HISTOGRAM_EDGES_PX = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, math.inf)
CSV_NAME, PLOT_NAME = "label_quality.csv", "label_quality.png"


@dataclass
class GapQuality:
    """Label quality of the sampled pairs of one gap."""

    gap: int
    pairs: int
    pixels: int  # object pixels of the first images whose label stays in view (where the cycle error is measured)
    cycle_p50: float
    cycle_p90: float
    cycle_p99: float
    kept: float  # share of all object pixels whose label passed every check
    histogram: tuple[float, ...]  # share of the measured pixels per HISTOGRAM_EDGES_PX bin

    def row(self) -> dict[str, float | int]:
        """The CSV row: the figures, then one ``hist_LO_HI`` column per bin."""
        row = {k: v for k, v in asdict(self).items() if k != "histogram"}
        return row | {name: share for name, share in zip(histogram_columns(), self.histogram, strict=True)}

    def line(self) -> str:
        return (
            f"gap {self.gap}: cycle error p50/p90/p99 {self.cycle_p50:.2f}/{self.cycle_p90:.2f}/"
            f"{self.cycle_p99:.2f} px, labels kept {100 * self.kept:.1f} % ({self.pairs} pairs)"
        )


def histogram_columns() -> list[str]:
    return [f"hist_{lo:g}_{hi:g}" for lo, hi in itertools.pairwise(HISTOGRAM_EDGES_PX)]


def sample_pairs(dataset: PairDataset, pairs_per_gap: int) -> dict[int, list[int]]:
    """Dataset indices of the sample, per gap: up to ``pairs_per_gap`` first frames spread evenly over the pairs
    of the widest gap, each paired with the frame ``gap`` later (every such pair is in the dataset)."""
    index = {pair: k for k, pair in enumerate(dataset.pairs)}
    widest = max(dataset.gaps)
    starts = [(c, i) for c, i, j in dataset.pairs if j - i == widest]
    picks = sorted({round(x) for x in np.linspace(0, len(starts) - 1, min(pairs_per_gap, len(starts)))})
    return {gap: [index[(c, i, i + gap)] for c, i in (starts[p] for p in picks)] for gap in sorted(dataset.gaps)}


def measure_label_quality(dataset: PairDataset, pairs_per_gap: int) -> list[GapQuality]:
    """Cycle error distribution and kept share per gap over a fixed sample of ``dataset``'s pairs."""
    result = []
    for gap, indices in sample_pairs(dataset, pairs_per_gap).items():
        errors, kept, object_pixels = [], 0, 0
        for k in indices:
            c, i, _ = dataset.pairs[k]
            label = dataset.label(k)
            mask = dataset.mask(c, i)
            error = label.cycle_error[mask]
            errors.append(error[np.isfinite(error)])
            kept += int((label.valid & mask).sum())
            object_pixels += int(mask.sum())
        measured = np.concatenate(errors)
        p50, p90, p99 = np.percentile(measured, (50, 90, 99)) if measured.size else (math.nan,) * 3
        counts, _ = np.histogram(measured, bins=HISTOGRAM_EDGES_PX)
        result.append(
            GapQuality(
                gap=gap,
                pairs=len(indices),
                pixels=int(measured.size),
                cycle_p50=float(p50),
                cycle_p90=float(p90),
                cycle_p99=float(p99),
                kept=kept / max(object_pixels, 1),
                histogram=tuple(float(x) for x in counts / max(measured.size, 1)),
            )
        )
    return result


def write_label_quality(qualities: list[GapQuality], out_dir: Path, cycle_max_px: float = 0.0) -> tuple[Path, Path]:
    """``label_quality.csv`` and ``label_quality.png`` in ``out_dir``; the plot marks the cycle threshold."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_NAME
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(qualities[0].row()))
        writer.writeheader()
        writer.writerows(q.row() for q in qualities)
    return csv_path, label_quality_plot(qualities, out_dir / PLOT_NAME, cycle_max_px)


def label_quality_plot(qualities: list[GapQuality], path: Path, cycle_max_px: float = 0.0) -> Path:
    """Cycle error percentiles and kept share by gap, and the cycle error histogram of every gap."""
    gaps = [q.gap for q in qualities]
    fig, (errors, kept, hist) = plt.subplots(1, 3, figsize=(15, 4))
    for name, style in (("cycle_p50", "o-"), ("cycle_p90", "s--"), ("cycle_p99", "^:")):
        errors.plot(gaps, [getattr(q, name) for q in qualities], style, label=name.removeprefix("cycle_"))
    if cycle_max_px > 0:
        errors.axhline(cycle_max_px, color="tab:red", lw=1, label=f"cycle_max_px {cycle_max_px:g}")
    errors.set(xlabel="pair gap (frames)", ylabel="cycle error (training px)", title="cycle error")
    errors.legend()
    kept.plot(gaps, [100 * q.kept for q in qualities], "o-")
    kept.set(xlabel="pair gap (frames)", ylabel="% of object pixels", ylim=(0, 100), title="labels kept")
    bins = np.arange(len(HISTOGRAM_EDGES_PX) - 1)
    width = 0.8 / len(qualities)
    for k, q in enumerate(qualities):
        hist.bar(bins + k * width, 100 * np.asarray(q.histogram), width, label=f"gap {q.gap}")
    hist.set_xticks(
        bins + 0.4 - width / 2, [f"<{hi:g}" for hi in HISTOGRAM_EDGES_PX[1:-1]] + [f">{HISTOGRAM_EDGES_PX[-2]:g}"]
    )
    hist.set(xlabel="cycle error (training px)", ylabel="% of measured pixels", title="cycle error histogram")
    hist.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path
