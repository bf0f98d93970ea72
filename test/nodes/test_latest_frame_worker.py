"""LatestFrameWorker: only the newest frame waits, drops and failures are counted, exceptions do not stop it."""

import threading
import time

from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker


def test_latest_frame_worker_keeps_only_newest_and_counts_drops():
    seen = []
    gate = threading.Event()

    def process(item):
        gate.wait(5)
        seen.append(item)

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
