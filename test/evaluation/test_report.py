"""Report folder: JSON figures, markdown tables, plots; the papers' published numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dense_descriptors_ros.evaluation.report import (
    PAPER_000_TABLE1,
    PAPER_000_TABLE2,
    Report,
    markdown_table,
    plot_cumulative_curves,
    plot_histograms,
    plot_trajectories,
    write_json,
)


def test_markdown_table_formats_cells():
    table = markdown_table(
        [{"method": "sift", "pck": 0.51234}, {"method": "ours", "pck": 0.9, "n": 3}], ["method", "pck", "n"], digits=2
    )
    assert table.splitlines() == [
        "| method | pck | n |",
        "| --- | --- | --- |",
        "| sift | 0.51 | – |",
        "| ours | 0.90 | 3 |",
    ]
    with pytest.raises(ValueError, match="column"):
        markdown_table([], [])


def test_write_json_handles_numpy(tmp_path):
    path = write_json(tmp_path / "f.json", {"a": np.float32(1.5), "b": np.arange(3), "c": {"d": np.int64(2)}})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": {"d": 2}}


def test_report_folder_has_json_markdown_and_plots(tmp_path):
    report = Report(tmp_path / "rep", "Test report", command="dense-descriptors evaluate x")
    report.add_figures("suite", {"ours": {"pck@1": 0.5}})
    report.add_table("Results", [{"method": "ours", "pck@1": 0.5}], ["method", "pck@1"], note="a note")
    rng = np.random.default_rng(0)
    plots = [
        plot_cumulative_curves({"a": rng.random(50), "b": rng.random(50) * 2}, report.plot_path("cdf"), "error"),
        plot_histograms({"a": rng.random(50)}, report.plot_path("hist"), "value"),
        plot_trajectories({"gt": rng.random((20, 3)), "est": rng.random((20, 3))}, report.plot_path("traj")),
    ]
    for path in plots:
        report.add_plot(path, path.stem)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.write().read_text()
    assert "| ours | 0.500 |" in md and "a note" in md and "![cdf](cdf.png)" in md
    figures = json.loads((tmp_path / "rep" / "figures.json").read_text())
    assert figures["figures"]["suite"]["ours"]["pck@1"] == 0.5 and figures["command"].startswith("dense-descriptors")


def test_paper_000_numbers():
    assert PAPER_000_TABLE1["ours"]["different_background"]["test-test"] == 1.2
    assert PAPER_000_TABLE1["SIFT"]["same_background"]["train-train"] == 61.2
    assert PAPER_000_TABLE2["drill"]["ours"]["mean"] == 0.5 and PAPER_000_TABLE2["hulk"]["SIFT"]["std"] == 4.8
