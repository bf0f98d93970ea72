"""Learning-rate schedules: a resumed run's cosine ends at the resumed run's last step."""

from __future__ import annotations

import logging

import pytest
import torch

from dense_descriptors_ros.config import from_mapping
from dense_descriptors_ros.learning.lr_schedule import end_schedule_at, make_scheduler
from dense_descriptors_ros.learning.recipe import TrainConfig


def _schedule(epochs: int, lr: float = 1e-3) -> tuple[torch.optim.Optimizer, object]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    config = from_mapping(TrainConfig, {"epochs": epochs, "optimizer": {"lr": lr}})
    return optimizer, make_scheduler(optimizer, config, steps_per_epoch=5)


def _run(optimizer: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def test_a_run_resumed_mid_way_with_more_epochs_decays_smoothly_to_the_floor_at_its_new_end() -> None:
    optimizer, scheduler = _schedule(epochs=2)  # 10 steps
    before = _run(optimizer, scheduler, 5)
    optimizer2, resumed = _schedule(epochs=4)  # the resumed run: 20 steps in all
    resumed.load_state_dict(scheduler.state_dict())
    optimizer2.param_groups[0]["lr"] = before[-1]
    end_schedule_at(resumed, step=5, end_step=20)
    after = _run(optimizer2, resumed, 15)
    assert all(b < a for a, b in zip([before[-1], *after], after[:-1], strict=False))  # strictly decreasing
    assert after[-1] == pytest.approx(1e-5) and after[0] > 0.9 * before[-1]


def test_a_finished_cosine_stays_at_its_floor_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    optimizer, scheduler = _schedule(epochs=2)
    _run(optimizer, scheduler, 10)
    with caplog.at_level(logging.WARNING):
        end_schedule_at(scheduler, step=10, end_step=20)
    assert "had ended at step 10: its 10 extra steps train at the final learning rate" in caplog.text
    assert _run(optimizer, scheduler, 10) == pytest.approx([1e-5] * 10)


def test_without_the_stretch_the_restored_cosine_would_climb_back() -> None:
    """What end_schedule_at prevents: past T_max, torch's cosine is periodic."""
    optimizer, scheduler = _schedule(epochs=2)
    rates = _run(optimizer, scheduler, 20)
    assert rates[9] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-3)
