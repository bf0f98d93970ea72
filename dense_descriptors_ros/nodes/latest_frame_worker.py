"""Keep only the newest frame: callbacks store, one worker thread processes, stale frames are dropped and counted.

Inference is slower than most cameras; queueing frames would only add latency and memory. The subscription
callback calls ``put`` (cheap, never blocks), the worker thread runs ``process`` on the newest item only.
``run_between_frames`` hands the worker a task to run before its next item (e.g. swapping in a new model).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class FrameCounts:
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before the worker got to it
    failed: int = 0  # ``process`` raised


class LatestFrameWorker:
    """One slot, one worker thread. ``process(item)`` exceptions go to ``on_error`` and the worker carries on."""

    def __init__(
        self,
        process: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        name: str = "frame-worker",
    ) -> None:
        self._process = process
        self._on_error = on_error
        self._name = name
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._task: Callable[[], None] | None = None
        self._busy = False
        self._running = False
        self._generation = 0  # a thread left running by a timed-out stop() must not resume after a restart
        self._thread: threading.Thread | None = None
        self.counts = FrameCounts()

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
            self._generation += 1
            generation = self._generation
        self._thread = threading.Thread(target=self._loop, args=(generation,), name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker after the item it is processing (waiting at most ``timeout`` seconds for it; the thread
        finishes the item on its own after that); a pending item is dropped."""
        with self._cond:
            self._running = False
            if self._has_item:
                self.counts.dropped += 1
            self._item, self._has_item, self._task = None, False, None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def put(self, item: Any) -> None:
        with self._cond:
            self.counts.received += 1
            if self._has_item:
                self.counts.dropped += 1
            self._item, self._has_item = item, True
            self._cond.notify()

    def run_between_frames(self, task: Callable[[], None]) -> bool:
        """Run ``task`` on the worker thread after the item in progress and before the next one (at once when idle);
        it replaces a task still waiting. False, and ``task`` never runs, when the worker is stopped (or is stopped
        before it gets to it). A task's exception goes to ``on_error``."""
        with self._cond:
            if not self._running:
                return False
            self._task = task
            self._cond.notify()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or processing (tests and shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._has_item and self._task is None and not self._busy, timeout)

    def _loop(self, generation: int) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._has_item or self._task is not None or not self._running or self._generation != generation
                    )
                )
                if not self._running or self._generation != generation:
                    return
                task, self._task = self._task, None  # a task first: it goes between two frames
                if task is None:
                    item, self._item, self._has_item = self._item, None, False
                self._busy = True
            if task is not None:
                self._run_task(task)
                continue
            try:
                self._process(item)
                failed = False
            except Exception as exc:  # the node logs it; one bad frame must not kill the worker
                failed = True
                self._on_error(exc)
            with self._cond:
                self._busy = False
                if failed:
                    self.counts.failed += 1
                else:
                    self.counts.processed += 1
                self._cond.notify_all()

    def _run_task(self, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception as exc:  # reported like a frame's error, but not counted as a failed frame
            self._on_error(exc)
        with self._cond:
            self._busy = False
            self._cond.notify_all()
