"""`dense-descriptors evaluate <suite>`: our model next to the baselines, on the same pixels, written as a report.

Suites (one module each in this package): ``hpatches`` (homography pairs: PCK, MMA, SAND AUC), ``sintel`` (optical
flow pairs: PCK, SAND AUC), ``davis`` (label propagation: J&F) and ``rendered`` (papers/000 tests 1-4 on rendered
objects). Images are shrunk so their longer side is at most ``--max-side``; pixel errors are reported in
original-image pixels (``shrunk_images``).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import BASELINE_NAMES, build_methods
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.davis import evaluate_davis
from dense_descriptors_ros.evaluation.suites.hpatches import evaluate_hpatches
from dense_descriptors_ros.evaluation.suites.rendered import evaluate_rendered
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.evaluation.suites.sintel import evaluate_sintel
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable
from dense_descriptors_ros.tracking.label_propagation import PropagationConfig

log = logging.getLogger(__name__)

SUITES = ("hpatches", "sintel", "davis", "rendered")


SUITE_FUNCTIONS = {
    "hpatches": evaluate_hpatches,
    "sintel": evaluate_sintel,
    "davis": evaluate_davis,
    "rendered": evaluate_rendered,
}


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SuiteSettings()
    prop = defaults.propagation
    parser.add_argument("suite", choices=SUITES, help="which benchmark to run")
    parser.add_argument("--model", default="", help="checkpoint folder of our model (empty: baselines only)")
    parser.add_argument("--out", default="", help="report folder (default: reports/<suite>)")
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINE_NAMES),
        help=f"comma-separated baselines from {','.join(BASELINE_NAMES)} (empty: none)",
    )
    parser.add_argument("--max-side", type=int, default=defaults.max_side, help="shrink images to this longer side")
    parser.add_argument("--points", type=int, default=defaults.points, help="query points per image pair")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="sampling seed")
    parser.add_argument(
        "--data-dir", default=None, help="shared data folder (default: $DDR_DATA_DIR or ../shared/data)"
    )
    parser.add_argument("--sequences", default="", help="DAVIS: comma-separated sequences (default: all present)")
    parser.add_argument("--max-frames", type=int, default=None, help="DAVIS: frames per sequence (default: all)")
    parser.add_argument("--topk", type=int, default=prop.topk, help="label propagation: top-k context cells")
    parser.add_argument("--radius", type=float, default=prop.radius, help="label propagation: radius in cells")
    parser.add_argument("--temperature", type=float, default=prop.temperature, help="label propagation: temperature")
    parser.add_argument(
        "--context-frames",
        type=int,
        default=prop.context_frames,
        help="label propagation: recent frames besides the first",
    )
    parser.add_argument("--objects", default=",".join(defaults.objects), help="rendered: comma-separated objects")
    parser.add_argument(
        "--backgrounds",
        default=",".join(defaults.backgrounds),
        help="rendered: two backgrounds, 'same' pairs use the first",
    )
    parser.add_argument(
        "--render-frames",
        type=int,
        default=defaults.render_frames,
        help="rendered: frames per video (first half train, second half test)",
    )
    parser.add_argument("--pairs", type=int, default=defaults.pairs, help="rendered: frame pairs per protocol cell")
    parser.add_argument(
        "--render-dir",
        default=defaults.render_dir,
        help="rendered: folder where the videos are rendered once and reused",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")


def settings_from_args(args: argparse.Namespace) -> SuiteSettings:
    if args.max_side < 0 or args.points < 1:
        raise ValueError(f"--max-side must be >= 0 and --points >= 1, got {args.max_side} and {args.points}")
    backgrounds = tuple(b for b in args.backgrounds.split(",") if b)
    if len(backgrounds) != 2:
        raise ValueError(f"--backgrounds needs exactly two names (same, different), got {args.backgrounds!r}")
    if args.render_frames < 4 or args.pairs < 1:
        raise ValueError(f"--render-frames must be >= 4 and --pairs >= 1, got {args.render_frames}, {args.pairs}")
    propagation = PropagationConfig(
        topk=args.topk, radius=args.radius, temperature=args.temperature, context_frames=args.context_frames
    )
    return SuiteSettings(
        max_side=args.max_side,
        points=args.points,
        seed=args.seed,
        data_dir=args.data_dir,
        sequences=tuple(s for s in args.sequences.split(",") if s),
        max_frames=args.max_frames,
        propagation=propagation,
        objects=tuple(o for o in args.objects.split(",") if o),
        backgrounds=backgrounds,
        render_frames=args.render_frames,
        pairs=args.pairs,
        render_dir=args.render_dir,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run one suite and write its report folder; returns 0, or 3 when its dataset is missing (skipped)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    baselines = [b for b in args.baselines.split(",") if b]
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINE_NAMES)}")
    methods = build_methods(args.model or None, baselines)
    out = Path(args.out or f"reports/{args.suite}")
    command = "dense-descriptors " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = Report(out, f"Evaluation: {args.suite}", command=command)
    try:
        results = SUITE_FUNCTIONS[args.suite](methods, settings, report)
    except (real_datasets.DatasetMissing, RendererUnavailable) as err:
        log.warning("suite %s skipped: %s", args.suite, err)
        return 3
    report.add_figures(args.suite, results)
    path = report.write()
    log.info("report written to %s", path)
    print(path.read_text())
    return 0
