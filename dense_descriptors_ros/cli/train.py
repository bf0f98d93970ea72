"""`dense-descriptors train`: a training recipe (YAML) plus overrides -> a run folder (see learning/trainer.py).

With ``--watch-bags DIR`` it keeps training as bags close in DIR (learning/adapt_loop.py), and with ``--publish-to
NODE`` pushes each better checkpoint to that running node's ``~/load_model``.

Under ``torchrun --nproc_per_node N`` every process runs this command and they train together
(learning/distributed.py): rank 0 reads the inputs first (filling the run's frame store, which the others then
read), and it alone logs and prints the summary.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.config import ConfigError, from_mapping, read_yaml_mapping
from dense_descriptors_ros.io.input_lists import expand_inputs
from dense_descriptors_ros.learning.adapt_loop import AdaptLoop
from dense_descriptors_ros.learning.distributed import start_distributed, stop_distributed
from dense_descriptors_ros.learning.recipe import TrainConfig, build_datasets
from dense_descriptors_ros.learning.trainer import Trainer

log = logging.getLogger(__name__)
# The recipe values one often changes per run get options of their own; any other goes through --set.
TRAIN_OPTIONS = ConfigOptions(TrainConfig, only=("epochs", "device", "topic"), show_defaults=False)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training recipe YAML, e.g. training/object.yaml")
    parser.add_argument(
        "--data",
        nargs="+",
        help="video file(s), image folder(s), rosbag2(s), folder(s) of rosbag2s, or a .txt file listing inputs",
    )
    parser.add_argument(
        "--watch-bags",
        metavar="DIR",
        help="instead of --data: train a round on all closed bags in DIR whenever new ones close (OUT/round_NNN)",
    )
    parser.add_argument(
        "--publish-to",
        metavar="NODE",
        help="with --watch-bags: push each round's checkpoint that beats the published one to NODE's ~/load_model",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="with --watch-bags: seconds a bag's files must stay unchanged before it counts as closed (default 5)",
    )
    parser.add_argument(
        "--rounds", type=int, default=0, help="with --watch-bags: stop after this many rounds (default 0: never)"
    )
    parser.add_argument("--masks", nargs="+", default=None, help="mask folder per --data input (sets masks: folder)")
    parser.add_argument("--out", default=None, help="run folder (default runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one recipe value (dotted key, YAML value), e.g. --set model.backbone=resnet18; repeatable",
    )
    TRAIN_OPTIONS.add_to(parser, "recipe overrides (default: the recipe's value)")


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``recipe`` with ``KEY=VALUE`` overrides applied (dotted keys into nested sections, values parsed as YAML)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        *sections, leaf = key.split(".")
        node = recipe
        for section in sections:
            child = node.setdefault(section, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {section!r} is a value, not a section")
            node = child
        node[leaf] = yaml.safe_load(text)
    return recipe


def run_train(args: argparse.Namespace) -> int:
    """Train as the recipe and the overrides say; prints the run's summary."""
    recipe = read_yaml_mapping(args.config)
    apply_overrides(recipe, args.overrides)
    recipe.update(TRAIN_OPTIONS.given(args))
    if args.masks:
        recipe["masks"] = "folder"
    config = from_mapping(TrainConfig, recipe)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    if args.watch_bags:
        return _run_adapt_loop(args, config, out)
    if not args.data:
        raise ConfigError("give the training data with --data (or --watch-bags DIR to train as bags are recorded)")
    if args.publish_to:
        raise ConfigError("--publish-to needs --watch-bags")
    if (out / "last").exists() and not args.resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    run = start_distributed(config.device)
    if not run.is_main:
        logging.getLogger().setLevel(logging.ERROR)  # rank 0 logs for the run
    try:
        data = expand_inputs(args.data)
        with run.main_first():
            train_set, val_set = build_datasets(
                config, data, args.masks, cache_dir=out / "flow_cache", frame_store=out / "frame_cache"
            )
        provenance = {"data": [clip.name for clip in train_set.clips]}  # the inputs read, less skipped bags
        trainer = Trainer(config, train_set, val_set, out, provenance=provenance, distributed=run)
        if args.resume and not trainer.resume():
            log.warning("%s: nothing to resume, starting a new run", out)
        summary = trainer.fit()
    finally:
        stop_distributed(run)
    if run.is_main:
        print(yaml.safe_dump(summary, sort_keys=False).strip())
    return 0


def _run_adapt_loop(args: argparse.Namespace, config: TrainConfig, out: Path) -> int:
    """--watch-bags: train rounds as bags close; prints one summary line per round."""
    if args.data or args.masks or args.resume:
        raise ConfigError("--watch-bags trains on the bags in its folder: leave out --data, --masks and --resume")
    if not Path(args.watch_bags).is_dir():
        raise ConfigError(f"--watch-bags: {args.watch_bags} is not a folder")
    if args.rounds < 0:
        raise ConfigError(f"--rounds: {args.rounds} is negative (0 = keep watching)")
    if any(out.glob("round_*")):
        raise ConfigError(f"{out} already holds adapt rounds; choose another --out")
    if args.publish_to:
        from dense_descriptors_ros.nodes.model_push import push_model  # rclpy: only when a node is named

        def publish(checkpoint: Path) -> str:
            return push_model(args.publish_to, checkpoint.resolve())
    else:

        def publish(checkpoint: Path) -> str:
            return "not pushed (no --publish-to)"

    loop = AdaptLoop(config, args.watch_bags, out, publish, settle=args.settle)
    log.info("watching %s for closed bags (unchanged for %.1f s)", args.watch_bags, args.settle)
    try:
        while not args.rounds or len(loop.rounds) < args.rounds:
            record = loop.next_round()
            print(
                f"round {record.index}: {len(record.bags)} bag(s), error {record.error:.4f} "
                f"(published before: {record.published_error:.4f}), {'published' if record.published else 'kept'} "
                f"{record.checkpoint}"
            )
    except KeyboardInterrupt:
        log.info("stopped after %d round(s); last published: %s", len(loop.rounds), loop.published)
    return 0
