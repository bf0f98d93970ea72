"""Learning-rate schedules of a training run: built from the recipe, and fitted to a resumed run's own end.

A resumed run restores the saved schedule, whose cosine ends where the first run's epochs did. Left alone,
``CosineAnnealingLR`` is periodic past that end: a run resumed with more epochs would climb back to the full
learning rate and finish there. :func:`end_schedule_at` moves the end to the resumed run's last step instead.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from dense_descriptors_ros.learning.recipe import TrainConfig

log = logging.getLogger(__name__)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Any:
    """The recipe's schedule, stepped once per optimiser step; the cosine ends at lr / 100 after the last epoch."""
    c = config.optimizer
    total = max(1, config.epochs * steps_per_epoch)
    if c.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=c.lr * 0.01)
    if c.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=c.step_epochs * steps_per_epoch, gamma=c.step_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def end_schedule_at(scheduler: Any, step: int, end_step: int) -> None:
    """Make a restored cosine schedule, now at ``step``, reach its floor at ``end_step`` (the resumed run's last
    step) instead of the saved run's. The rest of the curve is stretched from the current rate, so a run resumed
    mid-way continues smoothly; a run whose cosine had ended stays at its floor (lr / 100) for the extra epochs.
    Other schedules do not depend on the run's length and are left as they are."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) or end_step == scheduler.T_max:
        return
    if step >= scheduler.T_max and end_step > step:
        log.warning(
            "the resumed run's cosine schedule had ended at step %d: its %d extra steps train at the final "
            "learning rate (lr / 100); start a new run (another --out) for a full schedule",
            scheduler.T_max,
            end_step - step,
        )
    scheduler.T_max = max(end_step, step + 1)
