"""DDP training under torchrun: two gloo processes on CPU train as one process with the doubled batch, rank 0
alone writes the run; raw flows are shared through the cache; the single-process run is unchanged by it all."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import BatchSampler

from dense_descriptors_ros.cli.main import main
from dense_descriptors_ros.config import from_mapping
from dense_descriptors_ros.io.bag_writer import write_image_bag
from dense_descriptors_ros.learning.dataset import VideoClip
from dense_descriptors_ros.learning.distributed import DistributedRun, RankBatches, raw_flow_pairs, start_distributed
from dense_descriptors_ros.learning.masks import FullMaskProvider
from dense_descriptors_ros.learning.recipe import TrainConfig, datasets_from_clips
from dense_descriptors_ros.learning.trainer import seed_everything
from dense_descriptors_ros.model.checkpoint import load_checkpoint, read_model_meta
from dense_descriptors_ros.model.network import DescriptorNet
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_fused(tiny_fused_model: dict) -> dict:
    """A tiny fused recipe: the fused network (frozen encoder in eval mode, a fine branch without BatchNorm), so a
    step's loss does not depend on how the batch is split; plain loss normalisation (not by hard negatives) for the
    same reason."""
    return {
        "model": tiny_fused_model,
        "flow": {"chain": 2, "chain_min": 1, "direct_max_px": 1.0},
        "sampler": {"num_matches": 100, "non_matches_per_match": 10},
        "loss": {"scale_by_hard_negatives": False},
        "augment": {"brightness": 0.0, "contrast": 0.0},
        "optimizer": {"lr": 0.01, "schedule": "constant"},
        "image_height": 48,
        "image_width": 64,
        "epochs": 1,
        "steps_per_epoch": 4,
        "val_pairs": 2,
        "val_points": 100,
        "label_quality_pairs": 0,
        "device": "cpu",
    }


def test_raw_flow_pairs_are_the_steps_and_direct_flows_of_the_pairs(tiny_fused: dict) -> None:
    frames = textured_object_video(num_frames=8, height=48, width=64, seed=0).frames
    config = TrainConfig(**{k: v for k, v in tiny_fused.items() if not isinstance(v, dict)})
    config.flow.chain, config.flow.chain_min, config.flow.direct_max_px = 2, 1, 1.0
    train, _ = datasets_from_clips(config, [VideoClip("v", frames, FullMaskProvider())])
    assert sorted(train.pairs) == [(0, 0, 1), (0, 0, 2), (0, 1, 2), (0, 1, 3), (0, 2, 3)]
    assert raw_flow_pairs(train) == [(0, 0, 1), (0, 0, 2), (0, 1, 2), (0, 1, 3), (0, 2, 3)]
    config.flow.direct_max_px = 0.0
    assert raw_flow_pairs(train) == [(0, 0, 1), (0, 1, 2), (0, 2, 3)]


def test_the_ranks_share_each_whole_run_batch() -> None:
    batches = BatchSampler(range(10), batch_size=4, drop_last=False)  # [0..3], [4..7], [8, 9]
    parts = [list(RankBatches(batches, DistributedRun(rank, 2))) for rank in (0, 1)]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    assert list(RankBatches(batches, DistributedRun())) == list(batches)


def test_without_torchrun_training_is_one_process() -> None:
    run = start_distributed("cpu")
    assert run == DistributedRun() and run.is_main and not run.active
    net = torch.nn.Linear(2, 2)
    assert run.wrap(net) is net and run.mean({"loss": 0.5}) == {"loss": 0.5}


def _bags(folder: Path) -> Path:
    for seed in (1, 2):
        video = textured_object_video(num_frames=12, height=96, width=128, seed=seed)
        write_image_bag(folder / f"rec_{seed}", [(1.0 + 0.1 * k, f) for k, f in enumerate(video.frames)])
    return folder


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TRAIN = ["-m", "dense_descriptors_ros.cli.main", "train"]


def _torchrun_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _start(command: list[str], env: dict[str, str], capture: bool = True) -> subprocess.Popen:
    """torchrun in a session of its own, so ``_stop`` can end it with its workers."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=output, stderr=output, text=True, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _run(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a torchrun command; it and its workers are killed after ``timeout``."""
    process = _start(command, env)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.returncode is None:
            _stop(process)
    return process.returncode, out, err


def _losses(run: Path) -> list[float]:
    with (run / "train_log.csv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.usefixtures("one_torch_thread")
def test_two_gloo_processes_train_like_one_process_with_the_doubled_batch(tmp_path: Path, tiny_fused: dict) -> None:
    bags = _bags(tmp_path / "recordings")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_fused))
    command = ["train", "--config", str(tmp_path / "tiny.yaml"), "--data", str(bags)]
    assert main([*command, "--out", str(tmp_path / "one"), "--set", "batch_size=2"]) == 0

    ddp = [*TORCHRUN, *TRAIN, *command[1:], "--out", str(tmp_path / "two")]
    status, out, err = _run([*ddp, "--set", "batch_size=1"], _torchrun_env(), timeout=180)
    assert status == 0, err[-3000:]
    assert out.count("best_error_percentile") == 1  # rank 0 alone prints the summary

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 4  # rank 0 alone writes the log, one row per step
    # Each rank's loss is the mean over its own pair's matches and DDP averages the ranks; one process averages over
    # all matches. The two agree exactly when the pairs have as many valid matches and non-matches, closely else.
    np.testing.assert_allclose(two, one, rtol=1e-3)
    # The weights: the frozen encoder and rank 0's fitted projection alike exactly; the trained fine branch moved
    # from its initial weights the same way (Adam turns the small differences above into small weight differences).
    seed_everything(0)
    start = DescriptorNet(from_mapping(TrainConfig, tiny_fused).model).state_dict()
    net_one, net_two = load_checkpoint(tmp_path / "one" / "last"), load_checkpoint(tmp_path / "two" / "last")
    for (name, a), b in zip(net_one.state_dict().items(), net_two.state_dict().values(), strict=True):
        if "fine" in name:
            assert torch.linalg.norm(b - a) < 0.05 * torch.linalg.norm(a - start[name]), name
        else:
            assert torch.equal(a, b), name
    meta = read_model_meta(tmp_path / "two" / "last")["provenance"]
    assert (meta["world_size"], meta["effective_batch_size"]) == (2, 2)
    config = (tmp_path / "two" / "config.yaml").read_text()
    assert config.startswith("# effective_batch_size: 2 (2 process(es) x batch_size 1)")
    assert yaml.safe_load(config)["batch_size"] == 1
    # Every raw flow of the training pairs was computed once into the shared cache (2 bags x 9 pairs: 5 steps and
    # 4 direct flows each), plus the validation pairs rank 0 labelled.
    assert len(list((tmp_path / "two" / "flow_cache").glob("*.npz"))) >= 18
    assert not list((tmp_path / "two" / "flow_cache").glob("*.tmp*"))
    # One store per bag (rank 0 wrote them, rank 1 read them), no temporaries left.
    stored = sorted(p.suffix for p in (tmp_path / "two" / "frame_cache").iterdir())
    assert stored == sorted([".frames", ".flow_frames", ".json"] * 2)


def _pid_of_rank(rank: int, token: str) -> int | None:
    """The pid of the torchrun worker of ``rank`` among the processes started with DDR_TEST_TOKEN=token."""
    for proc in Path("/proc").iterdir():
        try:
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):
            continue
        if f"DDR_TEST_TOKEN={token}".encode() in environ and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


def test_a_run_whose_rank_was_killed_resumes_from_its_last_epoch(tmp_path: Path, tiny_fused: dict) -> None:
    bags = _bags(tmp_path / "recordings")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**tiny_fused, "epochs": 2, "steps_per_epoch": 12}))
    token = tmp_path.name
    env = _torchrun_env(DDR_TEST_TOKEN=token)
    out = tmp_path / "run"
    command = [*TORCHRUN, *TRAIN, "--config", str(tmp_path / "tiny.yaml"), "--data", str(bags), "--out", str(out)]
    command += ["--set", "batch_size=1"]
    first = _start(command, env, capture=False)  # nobody reads its output while it runs
    try:
        deadline = time.monotonic() + 120
        while not (out / "last" / "train_state.pt").is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        rank_1 = _pid_of_rank(1, token)
        assert rank_1 is not None, "rank 1 is not running after epoch 1"
        os.kill(rank_1, signal.SIGKILL)  # in epoch 2: torchrun stops rank 0 too
        first.communicate(timeout=60)
        assert first.returncode != 0
    finally:
        if first.returncode is None:
            _stop(first)
    assert read_model_meta(out / "last")["provenance"]["epoch"] == 1

    status, stdout, stderr = _run([*command, "--resume"], env, timeout=120)
    assert status == 0, stderr[-3000:]
    summary = yaml.safe_load(stdout[stdout.index("untrained_error_percentile") :])
    assert (summary["epochs"], summary["steps"]) == (2, 24)
    with (out / "val_log.csv").open() as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2]
