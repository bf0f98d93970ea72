"""`dense-descriptors evaluate <suite>`: our model next to the baselines, on the same pixels, written as a report.

Suites (one module each in evaluation/suites/): ``hpatches`` (homography pairs: PCK, MMA, SAND AUC), ``sintel``
(optical flow pairs: PCK, SAND AUC), ``davis`` (label propagation: J&F), ``lmo`` (real texture-less objects over
wide baselines, BOP LM-O: PCK, MMA, SAND AUC per viewpoint change) and ``rendered`` (papers/000 tests 1-4 on
rendered objects). Images are shrunk so their longer side is at most ``--max-side``; pixel errors are reported in
original-image pixels. The suite settings are SuiteSettings' fields (label propagation as ``--propagation.*``).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import BASELINE_NAMES, build_methods
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.davis import evaluate_davis
from dense_descriptors_ros.evaluation.suites.hpatches import evaluate_hpatches
from dense_descriptors_ros.evaluation.suites.lmo import evaluate_lmo
from dense_descriptors_ros.evaluation.suites.rendered import evaluate_rendered
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.sintel import evaluate_sintel
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable

log = logging.getLogger(__name__)

SUITE_FUNCTIONS = {
    "hpatches": evaluate_hpatches,
    "sintel": evaluate_sintel,
    "davis": evaluate_davis,
    "lmo": evaluate_lmo,
    "rendered": evaluate_rendered,
}
SUITE_OPTIONS = ConfigOptions(SuiteSettings)
EXIT_SKIPPED = 3  # the suite's dataset is missing, or the rendered suite has no OpenGL: nothing was measured


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=tuple(SUITE_FUNCTIONS), help="which benchmark to run")
    parser.add_argument("--model", default="", help="checkpoint folder of our model (empty: baselines only)")
    parser.add_argument("--out", default="", help="report folder (default: reports/<suite>)")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINE_NAMES),
        help=f"comma-separated baselines from {','.join(BASELINE_NAMES)} (empty: none)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    SUITE_OPTIONS.add_to(
        parser, "suite settings (hpatches, sintel, davis, lmo: real data; rendered: generated objects)"
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run one suite and write its report folder; returns 0, or 3 when its dataset is missing (skipped)."""
    settings = SUITE_OPTIONS.build(args)
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINE_NAMES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = build_methods(args.model or None, baselines)
    out = Path(args.out or f"reports/{args.suite}")
    command = "dense-descriptors " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = Report(out, f"Evaluation: {args.suite}", command=command)
    try:
        results = SUITE_FUNCTIONS[args.suite](methods, settings, report)
    except (real_datasets.DatasetMissing, RendererUnavailable) as err:
        log.warning("suite %s skipped: %s", args.suite, err)
        return EXIT_SKIPPED
    report.add_figures(args.suite, results)
    path = report.write()
    log.info("report written to %s", path)
    print(path.read_text())
    return 0
