"""Frames lost before they reached us, counted from gaps in the stream's stamps (ROS 2 images carry no sequence).

The nominal frame period is a low quantile of the recent stamp steps: losses only make steps longer, and camera
jitter makes a few shorter, so the 20th percentile stays at the true period even when half the frames are lost.
A step of k periods (k > 1.5) counts k - 1 lost frames. Stamps that go back (a replayed bag) restart the estimate.
"""

from __future__ import annotations

import collections

import numpy as np

HISTORY = 30  # stamp steps the period is estimated from
MIN_STEPS = 3  # steps needed before gaps are counted
GAP_FACTOR = 1.5  # a step longer than this many periods is a gap
PERIOD_QUANTILE = 0.2


class StampGaps:
    def __init__(self) -> None:
        self.lost = 0  # frames missing from the stream so far
        self.restarts = 0  # times the stamps went back
        self._steps: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self._last: float | None = None

    @property
    def period(self) -> float | None:
        """The estimated nominal frame period in seconds (None until a few frames arrived)."""
        if len(self._steps) < MIN_STEPS:
            return None
        return float(np.quantile(np.array(self._steps), PERIOD_QUANTILE))

    def add(self, stamp: float) -> int:
        """Take the stamp (seconds) of the next frame received; returns the frames lost just before it."""
        last, self._last = self._last, stamp
        if last is None or stamp == last:
            return 0
        step = stamp - last
        if step < 0:
            self.restarts += 1
            self._steps.clear()
            return 0
        period = self.period
        self._steps.append(step)
        if period is None or period <= 0 or step <= GAP_FACTOR * period:
            return 0
        lost = round(step / period) - 1
        self.lost += lost
        return lost
