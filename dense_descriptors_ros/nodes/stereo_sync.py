"""Pairs left and right images by stamp (message_filters' ApproximateTime policy, with a count of the unmatched).

Both queues keep at most ``queue_size`` messages; a left and a right message whose stamps differ by at most
``slop`` seconds are paired (the closest right message for the oldest left one), older unmatched messages on
both sides are dropped and counted. Free of ROS: messages are opaque, stamps are floats.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class StereoSynchronizer:
    def __init__(self, callback: Callable[[Any, Any], None], slop: float = 0.005, queue_size: int = 10) -> None:
        if slop < 0:
            raise ValueError(f"slop must be >= 0 seconds, got {slop}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._callback = callback
        self.slop = slop
        self._left: deque[tuple[float, Any]] = deque(maxlen=queue_size)
        self._right: deque[tuple[float, Any]] = deque(maxlen=queue_size)
        self._lock = threading.Lock()
        self.pairs = 0
        self.unmatched = 0

    def add_left(self, stamp: float, msg: Any) -> None:
        self._add(self._left, stamp, msg)

    def add_right(self, stamp: float, msg: Any) -> None:
        self._add(self._right, stamp, msg)

    def _add(self, queue: deque, stamp: float, msg: Any) -> None:
        with self._lock:
            if len(queue) == queue.maxlen:
                self.unmatched += 1
            queue.append((stamp, msg))
            pair = self._match()
        if pair is not None:
            self._callback(*pair)

    def _match(self) -> tuple[Any, Any] | None:
        while self._left and self._right:
            stamp_l, msg_l = self._left[0]
            best = min(range(len(self._right)), key=lambda i: abs(self._right[i][0] - stamp_l))
            stamp_r, msg_r = self._right[best]
            if abs(stamp_r - stamp_l) <= self.slop:
                # Everything older than the pair can no longer be matched.
                for _ in range(best + 1):
                    self._right.popleft()
                self.unmatched += best
                self._left.popleft()
                self.pairs += 1
                return msg_l, msg_r
            if stamp_r > stamp_l:
                # The right stream is ahead: this left message will never find a partner.
                self._left.popleft()
                self.unmatched += 1
            elif len(self._right) == best + 1:
                return None  # wait for a newer right message
            else:
                self._right.popleft()
                self.unmatched += 1
        return None
