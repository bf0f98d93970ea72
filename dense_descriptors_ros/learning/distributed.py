"""Training on several processes: torch DistributedDataParallel under ``torchrun`` (one node or several).

``torchrun --nproc_per_node N -m dense_descriptors_ros.cli.main train ...`` starts N copies of the train command;
``start_distributed`` reads torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK) and joins the process group
(nccl on CUDA, gloo on CPU). Without torchrun it returns the single-process ``DistributedRun`` and nothing else
changes. Every rank draws the single-process batches of world_size x batch_size pairs in the same seeded order and
takes its own share of each (``RankBatches``), so N processes train like one with the N times larger batch, and
one process exactly as before; DDP averages the gradients, and only rank 0 logs, validates, draws and writes
checkpoints.

Flow labels: before training, ``share_flow_labels`` computes every raw flow the training pairs need exactly once
across the ranks (rank r takes every world_size-th), into the run's on-disk flow cache; after a barrier every rank
reads them from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, Sampler

from dense_descriptors_ros.learning.dataset import PairDataset
from dense_descriptors_ros.model.engine import resolve_device

RANK_0_ONLY_TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class DistributedRun:
    """This process's place in a (possibly one-process) training run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and writes the run folder."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process (a process group is joined)."""
        return self.world_size > 1

    def device(self, requested: str) -> torch.device:
        """The device this rank trains on: the recipe's, with a CUDA device per local rank when distributed."""
        device = resolve_device(requested)
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. fills a disk cache), then the other ranks (which then read it)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` in DistributedDataParallel when distributed (which copies rank 0's weights and buffers, e.g. a
        fitted projection, to every rank; only parameters that train take part, a frozen encoder stays out), else
        ``net`` itself."""
        if not self.active:
            return net
        device = next(net.parameters()).device
        return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` averaged over the ranks (the same dict on every rank)."""
        if not self.active:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world_size).tolist(), strict=True))


class RankBatches(Sampler[list[int]]):
    """This rank's part of every batch of ``batches`` (the whole-run batches): contiguous parts that differ in size
    by one at most, so the ranks' parts of one batch are that batch. Each batch needs a pair per rank."""

    def __init__(self, batches: BatchSampler, run: DistributedRun) -> None:
        self.batches = batches
        self.run = run

    def __iter__(self) -> Iterator[list[int]]:
        world, rank = self.run.world_size, self.run.rank
        for batch in self.batches:
            yield batch[rank * len(batch) // world : (rank + 1) * len(batch) // world]

    def __len__(self) -> int:
        return len(self.batches)


def start_distributed(device: str = "auto") -> DistributedRun:
    """Join torchrun's process group when this process was started by torchrun with more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedRun()
    run = DistributedRun(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    cuda = run.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(run.local_rank)
    if not dist.is_initialized():
        # The other ranks wait while rank 0 alone validates, draws and saves: allow that more than nccl's default
        # ten minutes (a rank that dies is noticed by torchrun, not by this timeout).
        dist.init_process_group("nccl" if cuda else "gloo", timeout=RANK_0_ONLY_TIMEOUT)
    return run


def stop_distributed(run: DistributedRun) -> None:
    if run.active and dist.is_initialized():
        dist.destroy_process_group()


def raw_flow_pairs(dataset: PairDataset) -> list[tuple[int, int, int]]:
    """(clip, i, j) of every raw flow the labels of ``dataset``'s pairs read: each step of a chain, and the direct
    flow of a chained pair when the direct check is on."""
    direct = dataset.labeler.config.direct_max_px > 0
    wanted: set[tuple[int, int, int]] = set()
    for c, i, j in dataset.pairs:
        if dataset.clips[c].geometry is not None:  # labelled by depth and poses
            continue
        wanted.update((c, k, k + 1) for k in range(i, j))
        if direct and j - i > 1:
            wanted.add((c, i, j))
    return sorted(wanted)


def share_flow_labels(dataset: PairDataset, run: DistributedRun) -> None:
    """Compute the raw flows of ``dataset`` once across the ranks into the flow cache, then wait for all ranks.
    Without a cache (or a process group) there is nothing to share: labels are computed when first needed."""
    if not run.active or dataset.labeler.cache_dir is None:
        return
    for c, i, j in raw_flow_pairs(dataset)[run.rank :: run.world_size]:
        clip = dataset.clips[c]
        frames = clip.flow_frames if clip.flow_frames is not None else clip.frames
        dataset.labeler.cache_flows(frames[i], frames[j])
    run.barrier()
