"""Label quality statistics of a run on scripted flows with a known answer: in rows 8-31 of 32 every step drifts
0.2 px that the backward step does not undo, so the cycle error there is 0.2 px per frame of gap."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from scripted_flow import ScriptedFlowLabeler, drifting_flows, scripted_frames

from dense_descriptors_ros.learning.dataset import PairDataset, VideoClip
from dense_descriptors_ros.learning.flow import FlowConfig
from dense_descriptors_ros.learning.label_quality import (
    histogram_columns,
    measure_label_quality,
    sample_pairs,
    write_label_quality,
)
from dense_descriptors_ros.learning.masks import FullMaskProvider
from dense_descriptors_ros.learning.sampling import PairSampler

H, W = 32, 64


def _dataset() -> PairDataset:
    flows = drifting_flows(12, H, W, slice(8, H), 0.2)
    clip = VideoClip("scripted", scripted_frames(12, H, W), FullMaskProvider())
    return PairDataset([clip], ScriptedFlowLabeler(flows, FlowConfig(cycle_max_px=0.5)), PairSampler(), gap=(1, 2, 3))


def test_the_sample_uses_the_same_first_frames_for_every_gap() -> None:
    dataset = _dataset()
    sample = sample_pairs(dataset, 2)
    assert {gap: [dataset.pairs[k] for k in indices] for gap, indices in sample.items()} == {
        1: [(0, 0, 1), (0, 2, 3)],
        2: [(0, 0, 2), (0, 2, 4)],
        3: [(0, 0, 3), (0, 2, 5)],
    }
    assert [len(v) for v in sample_pairs(dataset, 50).values()] == [3, 3, 3]  # the training half has 3 starts


def test_cycle_error_distribution_and_kept_share_per_gap(tmp_path: Path) -> None:
    qualities = measure_label_quality(_dataset(), 2)
    assert [q.gap for q in qualities] == [1, 2, 3] and all(q.pairs == 2 for q in qualities)
    band_share = 24 * 62 / (24 * 62 + 8 * 63)  # drifting rows among the pixels whose label stays in view
    for q in qualities:
        assert q.cycle_p50 == pytest.approx(0.2 * q.gap, abs=0.01)
        assert q.cycle_p99 == pytest.approx(0.2 * q.gap, abs=0.01)
        assert q.histogram[q.gap] == pytest.approx(band_share, abs=0.01)  # bins <0.25, <0.5, <1 for gaps 1-3
        assert q.histogram[0] == pytest.approx(1 - band_share, abs=0.02)
        assert sum(q.histogram) == pytest.approx(1.0)
    kept = {q.gap: q.kept for q in qualities}
    assert kept[1] > 0.85 and kept[2] > 0.85  # 0.2 and 0.4 px pass; the border rows and columns do not
    assert kept[3] == pytest.approx(7 / 32 * 60 / 64, abs=0.001)  # 0.6 px > 0.5: rows 1-7, x <= 59 stay
    csv_path, png_path = write_label_quality(qualities, tmp_path, cycle_max_px=0.5)
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["gap"]) for r in rows] == [1, 2, 3]
    figures = ["gap", "pairs", "pixels", "cycle_p50", "cycle_p90", "cycle_p99", "kept"]
    assert list(rows[0]) == figures + histogram_columns()
    assert histogram_columns()[0] == "hist_0_0.125" and histogram_columns()[-1] == "hist_4_inf"
    assert float(rows[2]["cycle_p90"]) == pytest.approx(0.6, abs=0.01)
    assert float(rows[2]["hist_0.5_1"]) == pytest.approx(band_share, abs=0.01)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gap 3: cycle error p50/p90/p99 0.60/0.60/0.60 px, labels kept 20.5 % (2 pairs)" in qualities[2].line()
