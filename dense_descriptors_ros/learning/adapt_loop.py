"""AdaptLoop: keep training as new bags arrive, and hand on each checkpoint that beats the one in use.

Every round trains the recipe afresh on all closed bags seen so far (``OUT/round_NNN``, a complete run folder; the
flow labels of bags seen before come from the shared ``OUT/flow_cache``). The round's best checkpoint is published
when its held-out mean error percentile is lower than that of the checkpoint published before, measured again on
the same round's held-out pairs (a larger data set brings other held-out pairs, so figures of two rounds are never
compared directly). ``publish`` is given the checkpoint folder (e.g. it pushes it to a running node's
``~/load_model``); an exception it raises is logged and the checkpoint counts as not published.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dense_descriptors_ros.io.closed_bags import closed_bags
from dense_descriptors_ros.learning.recipe import TrainConfig, build_datasets
from dense_descriptors_ros.learning.trainer import Trainer
from dense_descriptors_ros.model.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class AdaptRound:
    index: int
    bags: list[Path]
    checkpoint: Path
    error: float  # held-out mean error percentile of the round's best checkpoint
    published_error: float  # that of the checkpoint published before, on the same pairs (inf: none yet)
    published: bool


class AdaptLoop:
    def __init__(
        self,
        config: TrainConfig,
        watch: str | Path,
        out: str | Path,
        publish: Callable[[Path], str],
        settle: float = 5.0,
    ) -> None:
        self.config = config
        self.watch = Path(watch)
        self.out = Path(out)
        self.publish = publish
        self.settle = settle
        self.seen: list[Path] = []
        self.published: Path | None = None
        self.rounds: list[AdaptRound] = []

    def new_bags(self) -> list[Path]:
        """Closed bags not trained on yet."""
        return [bag for bag in closed_bags(self.watch, self.settle) if bag not in self.seen]

    def next_round(self, poll: float = 1.0) -> AdaptRound:
        """Wait until new bags are closed (looking every ``poll`` seconds), then train a round on them."""
        while not (new := self.new_bags()):
            time.sleep(poll)
        return self.run_round(new)

    def run_round(self, new: list[Path]) -> AdaptRound:
        self.seen += new
        index = len(self.rounds) + 1
        folder = self.out / f"round_{index:03d}"
        log.info("round %d: %d new bag(s), training on %d: %s", index, len(new), len(self.seen), folder)
        train_set, val_set = build_datasets(
            self.config, self.seen, cache_dir=self.out / "flow_cache", frame_store=self.out / "frame_cache"
        )
        provenance = {"data": [clip.name for clip in train_set.clips], "adapt_round": index}  # less skipped bags
        trainer = Trainer(self.config, train_set, val_set, folder, provenance=provenance)
        error = trainer.fit()["best_error_percentile"]
        published_error = self._error_of_published(trainer)
        better = math.isfinite(error) and error < published_error
        record = AdaptRound(index, list(self.seen), folder / "best", error, published_error, False)
        if better:
            try:
                answer = self.publish(record.checkpoint)
                record.published, self.published = True, record.checkpoint
                log.info(
                    "round %d: error %.4f beats %.4f: published %s (%s)",
                    index,
                    error,
                    published_error,
                    record.checkpoint,
                    answer,
                )
            except Exception as exc:  # a node that is down must not end the loop: the next round tries again
                log.error("round %d: publishing %s failed: %s", index, record.checkpoint, exc)
        else:
            log.info("round %d: error %.4f does not beat the published %.4f: kept", index, error, published_error)
        self.rounds.append(record)
        return record

    def _error_of_published(self, trainer: Trainer) -> float:
        """The published checkpoint's held-out error on ``trainer``'s validation pairs (inf when none is)."""
        if self.published is None:
            return math.inf
        trainer.net.load_state_dict(load_checkpoint(self.published, device=trainer.device).state_dict())
        error = trainer.validate()["mean_error_percentile"]
        return error if math.isfinite(error) else math.inf  # no matches to measure it on: any figure beats it
