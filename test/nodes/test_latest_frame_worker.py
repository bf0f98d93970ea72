"""LatestFrameWorker: only the newest frame waits, drops and failures are counted, exceptions do not stop it."""

import threading
import time

from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker


def _gated(seen):
    """A ``process`` that appends its item to ``seen`` once the returned gate is set."""
    gate = threading.Event()

    def process(item):
        gate.wait(5)
        seen.append(item)

    return process, gate


def test_latest_frame_worker_keeps_only_newest_and_counts_drops():
    seen = []
    process, gate = _gated(seen)
    worker = LatestFrameWorker(process, on_error=lambda exc: None)
    worker.start()
    worker.put(0)
    time.sleep(0.1)  # the worker is now blocked on item 0
    for i in range(1, 6):
        worker.put(i)
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == [0, 5]
    assert (worker.counts.received, worker.counts.processed, worker.counts.dropped) == (6, 2, 4)


def test_latest_frame_worker_survives_exceptions():
    errors = []

    def process(item):
        if item == "bad":
            raise ValueError("broken frame")

    worker = LatestFrameWorker(process, on_error=errors.append)
    worker.start()
    for item in ("bad", "good"):
        worker.put(item)
        assert worker.wait_idle(5)
    worker.stop()
    assert [str(e) for e in errors] == ["broken frame"]
    assert (worker.counts.failed, worker.counts.processed) == (1, 1)


def test_task_runs_between_two_frames_and_not_after_stop():
    order = []
    process, gate = _gated(order)
    worker = LatestFrameWorker(process, on_error=lambda exc: None)
    assert not worker.run_between_frames(lambda: order.append("never"))  # not started
    worker.start()
    worker.put(0)
    time.sleep(0.1)  # the worker is now blocked on frame 0
    worker.put(1)
    assert worker.run_between_frames(lambda: order.append("swap"))
    gate.set()
    assert worker.wait_idle(5)
    assert order == [0, "swap", 1]
    assert worker.counts.processed == 2 and worker.counts.failed == 0

    assert worker.run_between_frames(lambda: order.append("idle"))  # an idle worker runs it at once
    assert worker.wait_idle(5) and order[-1] == "idle"
    worker.stop()
    assert not worker.run_between_frames(lambda: order.append("never"))
    assert "never" not in order


def test_a_failing_task_is_reported_and_the_worker_carries_on():
    errors, seen = [], []

    def fail():
        raise RuntimeError("bad swap")

    worker = LatestFrameWorker(seen.append, on_error=errors.append)
    worker.start()
    worker.run_between_frames(fail)
    worker.put("frame")
    assert worker.wait_idle(5)
    worker.stop()
    assert [str(e) for e in errors] == ["bad swap"] and seen == ["frame"]
    assert worker.counts.failed == 0
