"""Self-supervised training of a DescriptorNet from video (papers/000); ``dense-descriptors train`` runs it.

``Trainer`` runs AdamW with a cosine or step schedule, AMP on CUDA only, gradient clipping and fixed seeds; it
shows tqdm bars with the loss and pairs/s, logs to CSV (and TensorBoard when it imports), validates on the
held-out half of each clip every epoch (mean error percentile, papers/000 section 4, and the loss), saves a
checkpoint every epoch (``last/``) and the best one (``best/``), can resume, draws a validation figure every
epoch, and at the end a loss curve and a descriptor grid next to the checkpoints. Under torchrun it trains with
DistributedDataParallel (learning/distributed.py): every rank trains on its share of each epoch's pairs, rank 0
alone writes the run folder.

Run folder layout::

    OUT/last/        checkpoint (weights.pt, model.yaml) + train_state.pt (optimiser, schedule, epoch)
    OUT/best/        checkpoint with the lowest held-out mean error percentile (+ the two final plots)
    OUT/train_log.csv, OUT/val_log.csv, OUT/figures/val_epoch_NNN.png, OUT/loss_curve.png,
    OUT/descriptor_grid.png, OUT/tensorboard/, OUT/config.yaml, OUT/flow_cache/, OUT/frame_cache/ (cli/train.py),
    OUT/label_quality.csv, OUT/label_quality.png (flow label quality per pair gap, measured before training)
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from tqdm import tqdm

from dense_descriptors_ros.config import ConfigError, to_mapping
from dense_descriptors_ros.features.sampling import sample_descriptor_maps
from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_text
from dense_descriptors_ros.learning.dataset import PairDataset
from dense_descriptors_ros.learning.distributed import DistributedRun, RankBatches, share_flow_labels
from dense_descriptors_ros.learning.encoder_cache import EncoderFeatureCache
from dense_descriptors_ros.learning.label_quality import GapQuality, measure_label_quality, write_label_quality
from dense_descriptors_ros.learning.loss import PixelwiseContrastiveLoss
from dense_descriptors_ros.learning.lr_schedule import end_schedule_at, make_scheduler
from dense_descriptors_ros.learning.recipe import TrainConfig
from dense_descriptors_ros.learning.run_log import RunLog
from dense_descriptors_ros.learning.training_plots import descriptor_grid, loss_curve, validation_figure
from dense_descriptors_ros.metrics.error_percentile import error_percentiles
from dense_descriptors_ros.model.checkpoint import load_checkpoint, save_checkpoint
from dense_descriptors_ros.model.engine import image_to_tensor
from dense_descriptors_ros.model.network import DescriptorNet, upsample_descriptors
from dense_descriptors_ros.model.semantic_projection import fit_semantic_projection, load_projection

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``DescriptorNet`` on ``train_set`` and validates on ``val_set``; writes everything under ``out_dir``."""

    def __init__(
        self,
        config: TrainConfig,
        train_set: PairDataset,
        val_set: PairDataset,
        out_dir: str | Path,
        provenance: dict[str, Any] | None = None,
        distributed: DistributedRun | None = None,
    ) -> None:
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.out_dir = Path(out_dir)
        self.distributed = distributed or DistributedRun()
        world = self.distributed.world_size
        if len(train_set) < world:
            raise ConfigError(f"{len(train_set)} training pairs cannot be shared by {world} processes; use more frames")
        self.provenance = {**(provenance or {}), "world_size": world, "effective_batch_size": config.batch_size * world}
        self.device = self.distributed.device(config.device)
        seed_everything(config.seed)
        self.net = DescriptorNet(config.model).to(self.device)
        self.train_net: torch.nn.Module = self.net  # the DDP wrapper once fit() starts, when distributed
        self.loss_fn = PixelwiseContrastiveLoss(config.loss, config.model.channel_groups)
        use_cache = self.net.has_frozen_encoder and config.encoder_cache_mb > 0
        self.encoder_cache = EncoderFeatureCache(config.encoder_cache_mb) if use_cache else None
        self.sampler = train_set.sampler
        self.optimizer = torch.optim.AdamW(
            self.net.parameter_groups(config.optimizer.lr, config.optimizer.encoder_lr or config.optimizer.lr),
            weight_decay=config.optimizer.weight_decay,
        )
        self.steps_per_epoch = config.steps_per_epoch or math.ceil(len(train_set) / (config.batch_size * world))
        self.scheduler = make_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.use_amp = bool(config.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.best_error = math.inf
        self.history: dict[str, list] = {
            "step": [],
            "loss": [],
            "val_epoch": [],
            "val_step": [],
            "val_error": [],
            "val_loss": [],
        }
        self.run_log = RunLog(self.out_dir)
        self.label_quality: list[GapQuality] = []

    # --- data ---------------------------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        """This rank's share of the epoch's batches: the batches of world_size x batch_size pairs one process would
        draw (shuffled with the seed and the epoch), each split over the ranks (with one process: all of it)."""
        run, size = self.distributed, self.config.batch_size * self.distributed.world_size
        generator = torch.Generator().manual_seed(self.config.seed + self.epoch)
        batches = BatchSampler(RandomSampler(self.train_set, generator=generator), size, len(self.train_set) >= size)
        return DataLoader(
            self.train_set,
            batch_sampler=RankBatches(batches, run),
            num_workers=self.config.num_workers,
            generator=generator,
        )

    def epoch_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """The ``steps_per_epoch`` batches of one epoch (for :meth:`train_step`), shuffled with the epoch's seed and
        cycling over the training pairs when more steps than pairs are asked."""
        produced = 0
        while True:
            for batch in self._loader():
                yield batch
                produced += 1
                if produced >= self.steps_per_epoch:
                    return

    # --- one step -----------------------------------------------------------------------------------------
    def _with_hard_negatives(self, batch: dict[str, torch.Tensor], desc_a: torch.Tensor, desc_b: torch.Tensor) -> None:
        """Append the UCN hard negative of every match as one more non-match column (all groups)."""
        with torch.no_grad():
            anchors = sample_descriptor_maps(desc_a.detach().float(), batch["matches_a"], normalize=False)
            found, flags = [], []
            for k in range(desc_b.shape[0]):
                position, far = self.sampler.hard_negatives(anchors[k], desc_b[k].detach(), batch["matches_b"][k])
                found.append(position)
                flags.append(far & batch["match_valid"][k])
        groups = batch["non_matches_b"].shape[1]
        extra = torch.stack(found)[:, None, :, None].expand(-1, groups, -1, -1, -1)
        extra_valid = torch.stack(flags)[:, None, :, None].expand(-1, groups, -1, -1)
        batch["non_matches_b"] = torch.cat([batch["non_matches_b"], extra], dim=3)
        batch["non_match_valid"] = torch.cat([batch["non_match_valid"], extra_valid], dim=3)

    def _full_resolution(self, desc: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A coarse (output stride > 1) descriptor map brought to the image size the labels are in."""
        return upsample_descriptors(desc, tuple(size), self.net.output_stride, *self.net.config.normalisation())

    def _loss(
        self, batch: dict[str, torch.Tensor], with_hard_negatives: bool, net: torch.nn.Module
    ) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Loss, its parts and the descriptors (2B, D, H, W: the a images, then the b images) of a batch, with
        ``net``: the network, or its DDP wrapper when training distributed."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        n = batch["image_a"].shape[0]
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp):
            images = torch.cat([batch["image_a"], batch["image_b"]])
            taps = self.encoder_cache.features(self.net, images) if self.encoder_cache is not None else None
            desc = net(images, taps)
        desc = self._full_resolution(desc.float(), images.shape[-2:])
        desc_a, desc_b = desc[:n], desc[n:]
        if with_hard_negatives:
            self._with_hard_negatives(batch, desc_a, desc_b)
        loss, parts = self.loss_fn(
            desc_a,
            desc_b,
            batch["matches_a"],
            batch["matches_b"],
            batch["match_valid"],
            batch["non_matches_b"],
            batch["non_match_valid"],
        )
        return loss, parts, desc

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step; the loss parts (averaged over the ranks when distributed)."""
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, parts, _ = self._loss(batch, self.config.sampler.hard_negatives, self.train_net)
        self.scaler.scale(loss).backward()
        if self.config.optimizer.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.trainable_parameters(), self.config.optimizer.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return self.distributed.mean(parts)

    # --- validation ---------------------------------------------------------------------------------------
    def validation_indices(self) -> list[int]:
        count = min(self.config.val_pairs, len(self.val_set))
        return sorted({round(x) for x in np.linspace(0, len(self.val_set) - 1, count)})

    @torch.inference_mode()
    def validate(self) -> dict[str, Any]:
        """Held-out mean error percentile (flow-labelled matches as truth) and loss, on fixed samples."""
        self.net.eval()
        errors, losses, examples = [], [], []
        rng = np.random.default_rng(self.config.seed)
        for index in self.validation_indices():
            item = self.val_set[index]
            batch = {k: v.unsqueeze(0) for k, v in item.items()}
            _, parts, desc = self._loss(batch, with_hard_negatives=False, net=self.net)
            losses.append(parts["loss"])
            desc = desc.permute(0, 2, 3, 1).cpu().numpy()
            valid = item["match_valid"].numpy()
            pts_a, pts_b = item["matches_a"].numpy()[valid], item["matches_b"].numpy()[valid]
            if len(pts_a) > self.config.val_points:
                keep = rng.choice(len(pts_a), self.config.val_points, replace=False)
                pts_a, pts_b = pts_a[keep], pts_b[keep]
            if len(pts_a):
                values = error_percentiles(desc[0], desc[1], pts_a, pts_b)
                errors.append(values)
                examples.append((item["image_a"], item["image_b"], desc[0], desc[1], pts_a, values))
        all_errors = np.concatenate(errors) if errors else np.zeros(0)
        return {
            "mean_error_percentile": float(all_errors.mean()) if all_errors.size else math.nan,
            "median_error_percentile": float(np.median(all_errors)) if all_errors.size else math.nan,
            "loss": float(np.mean(losses)) if losses else math.nan,
            "errors": all_errors,
            "examples": examples,
        }

    # --- outputs ------------------------------------------------------------------------------------------
    def _log_validation(self, epoch: int, result: dict[str, Any]) -> None:
        self.history["val_epoch"].append(epoch)
        self.history["val_step"].append(self.step)
        self.history["val_error"].append(result["mean_error_percentile"])
        self.history["val_loss"].append(result["loss"])
        figures = {k: result[k] for k in ("mean_error_percentile", "median_error_percentile")}
        self.run_log.row("val_log.csv", {"epoch": epoch, "step": self.step, **figures, "val_loss": result["loss"]})
        self.run_log.scalars(
            "val", {"mean_error_percentile": figures["mean_error_percentile"], "loss": result["loss"]}, self.step
        )
        validation_figure(result, epoch, self.out_dir / "figures" / f"val_epoch_{epoch:03d}.png")

    def _save(self, folder: Path, epoch: int, result: dict[str, Any]) -> None:
        provenance = {
            **self.provenance,
            "epoch": epoch,
            "step": self.step,
            "val_mean_error_percentile": result["mean_error_percentile"],
            "train_config": to_mapping(self.config),
        }
        save_checkpoint(folder, self.net, provenance, image_size=self.config.image_size)

    def _save_state(self) -> None:
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "best_error": self.best_error,
            "history": self.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(self.out_dir / "last" / STATE_FILE) as tmp:
            torch.save(state, tmp)

    def resume(self) -> bool:
        """Continue from ``OUT/last`` when it holds a training state; False when there is nothing to resume."""
        last = self.out_dir / "last"
        if not (last / STATE_FILE).is_file():
            return False
        loaded = load_checkpoint(last, device="cpu")
        # A loaded checkpoint says pretrained: false (its weights are all in weights.pt); that is no difference.
        saved = to_mapping(replace(loaded.config, pretrained=self.net.config.pretrained))
        if saved != to_mapping(self.net.config):
            raise ConfigError(
                f"{last}: checkpoint model {saved} differs from the recipe's {to_mapping(self.net.config)}; use "
                "another --out or the same recipe"
            )
        self.net.load_state_dict(loaded.state_dict())
        state = torch.load(last / STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        end_schedule_at(
            self.scheduler, self.step, self.step + max(0, self.config.epochs - self.epoch) * self.steps_per_epoch
        )
        self.best_error, self.history = state["best_error"], state["history"]
        log.info("resumed from %s after epoch %d (step %d)", last, self.epoch, self.step)
        return True

    # --- the loop -----------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for the remaining epochs; returns a summary (untrained vs. best error percentile, losses, paths).
        Distributed, every rank calls it; rank 0 alone validates and writes, and its summary is the run's."""
        main = self.distributed.is_main
        share_flow_labels(self.train_set, self.distributed)  # first: rank 0's label quality then reads the cache
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
            self._measure_labels()
            if self.epoch == 0 and not self.history["val_epoch"]:
                self._fit_semantic_projection()
                untrained = self.validate()
                self._log_validation(0, untrained)
                log.info("untrained: mean error percentile %.2f", untrained["mean_error_percentile"])
        if self.train_net is self.net:
            self.train_net = self.distributed.wrap(self.net)
        for epoch in range(self.epoch + 1, self.config.epochs + 1):
            self.train_set.set_epoch(epoch)
            bar = tqdm(
                self.epoch_batches(),
                total=self.steps_per_epoch,
                desc=f"epoch {epoch}/{self.config.epochs}",
                disable=not main,
            )
            started, pairs = time.perf_counter(), 0
            for batch in bar:
                parts = self.train_step(batch)
                pairs += batch["image_a"].shape[0] * self.distributed.world_size
                rate = pairs / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{parts['loss']:.4f}", pairs_s=f"{rate:.2f}")
                self.history["step"].append(self.step)
                self.history["loss"].append(parts["loss"])
                if main:
                    self._log_step(epoch, parts, rate)
            self.epoch = epoch
            if main:
                self._end_epoch(epoch)
            self.distributed.barrier()
        if main:
            if not (self.out_dir / "best").is_dir():  # every validation was NaN (no matches): keep the last one
                shutil.copytree(self.out_dir / "last", self.out_dir / "best", ignore=shutil.ignore_patterns(STATE_FILE))
            self._final_plots()
            self.run_log.close()
        self.distributed.barrier()
        return self.summary()

    def _write_config(self) -> None:
        """OUT/config.yaml: the recipe as run (loadable as a recipe again), headed by the effective batch size."""
        world, batch = self.distributed.world_size, self.config.batch_size
        header = f"# effective_batch_size: {batch * world} ({world} process(es) x batch_size {batch})\n"
        recipe = yaml.safe_dump(to_mapping(self.config), sort_keys=False)
        atomic_write_text(self.out_dir / "config.yaml", header + recipe)

    def _log_step(self, epoch: int, parts: dict[str, float], rate: float) -> None:
        row = {"epoch": epoch, "step": self.step, **parts, "lr": self.scheduler.get_last_lr()[0], "pairs_per_s": rate}
        self.run_log.row("train_log.csv", row)
        self.run_log.scalars("train", parts, self.step)

    def _end_epoch(self, epoch: int) -> None:
        """Validate, log, save ``last/`` (and ``best/`` when better) and the training state."""
        result = self.validate()
        self._log_validation(epoch, result)
        self._save(self.out_dir / "last", epoch, result)
        if self.config.keep_epoch_checkpoints:
            self._save(self.out_dir / f"epoch_{epoch:03d}", epoch, result)
        if result["mean_error_percentile"] < self.best_error:
            self.best_error = result["mean_error_percentile"]
            self._save(self.out_dir / "best", epoch, result)
        self._save_state()
        log.info("epoch %d: held-out mean error percentile %.2f", epoch, result["mean_error_percentile"])

    def _fit_semantic_projection(self) -> None:
        """A fused network's semantic basis: the PCA of its frozen features on this run's training frames, or the
        shipped basis (model/data/) when the recipe says so."""
        if self.net.config.architecture != "fused":
            return
        if not self.config.fit_semantic_projection:
            log.info("semantic projection: %s", load_projection(self.net))
            return
        frames = [f for clip in self.train_set.clips for f in clip.frames[: len(clip.frames) // 2 : 4]]
        explained = fit_semantic_projection(self.net, frames)
        share = 100 * explained
        log.info("semantic projection fitted on %d training frames (%.0f %% of the variance)", len(frames), share)

    def _measure_labels(self) -> None:
        """Flow label quality per gap on a fixed sample of the training pairs: files, one log line per gap."""
        if not self.config.label_quality_pairs:
            return
        if self.config.labels == "geometry":
            log.info("labels from depth and poses: exact where those are, no flow labels to measure")
            return
        self.label_quality = measure_label_quality(self.train_set, self.config.label_quality_pairs)
        write_label_quality(self.label_quality, self.out_dir, self.train_set.labeler.config.cycle_max_px)
        for quality in self.label_quality:
            log.info("flow labels, %s", quality.line())

    def _final_plots(self) -> None:
        best = load_checkpoint(self.out_dir / "best", device=self.device)
        frames = [
            self.val_set.clips[c].frames[i] for c, i, _ in (self.val_set.pairs[k] for k in self.validation_indices())
        ]
        with torch.inference_mode():
            images = [image_to_tensor(f)[None].to(self.device) for f in frames[:6]]
            descriptors = [
                self._full_resolution(best(x), x.shape[-2:])[0].permute(1, 2, 0).cpu().numpy() for x in images
            ]
        for folder in (self.out_dir, self.out_dir / "best"):
            loss_curve(self.history, folder / "loss_curve.png")
            descriptor_grid(frames[:6], descriptors, folder / "descriptor_grid.png")

    def summary(self) -> dict[str, Any]:
        errors = self.history["val_error"]
        recent = self.history["loss"][-max(1, self.steps_per_epoch) :]
        return {
            "untrained_error_percentile": errors[0] if errors else math.nan,
            "best_error_percentile": self.best_error,
            "final_error_percentile": errors[-1] if errors else math.nan,
            "untrained_val_loss": self.history["val_loss"][0] if self.history["val_loss"] else math.nan,
            "final_val_loss": self.history["val_loss"][-1] if self.history["val_loss"] else math.nan,
            "last_epoch_train_loss": float(np.mean(recent)) if recent else math.nan,
            "epochs": self.epoch,
            "steps": self.step,
            "checkpoint": str(self.out_dir / "best"),
            "encoder_cache": (
                {"hits": self.encoder_cache.hits, "misses": self.encoder_cache.misses} if self.encoder_cache else None
            ),
            "label_quality": {
                q.gap: {"cycle_p50": q.cycle_p50, "cycle_p90": q.cycle_p90, "cycle_p99": q.cycle_p99, "kept": q.kept}
                for q in self.label_quality
            },
        }
