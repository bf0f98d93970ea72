"""FrameWorkerNode: a ConfiguredLifecycleNode whose frames are processed by a newest-frame worker thread.

It adds the worker (subscriptions feed ``receive``, which counts gaps in the stamps and hands the message to
``self.worker``; ``process`` handles one item), the bad-input counter, the frame counts on /diagnostics and the
``~/enable`` service. Used by the descriptor, tracker and SLAM nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from std_srvs.srv import SetBool

from dense_descriptors_ros.io.stamp_gaps import StampGaps
from dense_descriptors_ros.nodes.configured_node import ConfiguredLifecycleNode, NodeConfig
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker

EXIT_WAIT = 0.5  # seconds a closing node waits for the frame in progress
LOST_LOG_EVERY = 100  # lost frames between two warnings


def stamp_seconds(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


@dataclass
class FrameNodeConfig(NodeConfig):
    """Parameters of every node that processes camera frames."""

    max_input_pixels: int = field(
        default=4096 * 4096,
        metadata={
            "help": "images with more pixels than this are rejected before they are decoded (counted as bad input)",
            "range": (1, 10**9),
        },
    )


class FrameWorkerNode(ConfiguredLifecycleNode):
    LIVE_PARAMETERS = frozenset({"max_input_pixels"})

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.problems = InputProblems(self.get_logger())
        self.worker = LatestFrameWorker(self._guarded_process, self._on_worker_error, name=f"{node_name}-worker")
        self.gaps = StampGaps()
        self.enabled = True
        self.create_service(SetBool, "~/enable", self._on_enable)

    def process(self, item: Any) -> None:
        raise NotImplementedError

    def receive(self, msg: Any) -> None:
        """Subscription callback: count frames missing before this one, hand it to the worker."""
        self.count_stamp(msg.header)
        self.worker.put(msg)

    def count_stamp(self, header: Any) -> None:
        """Count the frames missing from the input stream before the one with this header (warning now and then)."""
        before = self.gaps.lost
        if self.gaps.add(stamp_seconds(header)) and (
            before == 0 or before // LOST_LOG_EVERY < self.gaps.lost // LOST_LOG_EVERY
        ):
            self.get_logger().warning(
                f"{self.gaps.lost} input frame(s) lost before reaching this node so far (gaps in the stamps at a "
                f"{self.gaps.period:.3f} s period); a best-effort subscription (image_qos sensor_data) loses frames "
                "under load, image_qos reliable does not"
            )

    def diagnostic_values(self) -> dict[str, Any]:
        c = self.worker.counts
        return {
            "state": "enabled" if self.enabled else "paused (~/enable)",
            "received": c.received,
            "processed": c.processed,
            "dropped": c.dropped,
            "lost": self.gaps.lost,
            "failed": c.failed,
            "bad input": self.problems.total,
        }

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def close(self) -> None:
        # The process is exiting: a frame in the middle of an inference is abandoned, not waited for.
        self.worker.stop(timeout=EXIT_WAIT)
        super().close()

    def _guarded_process(self, item: Any) -> None:
        if self.enabled:
            self.process(item)

    def _on_worker_error(self, exc: Exception) -> None:
        self.problems.report_error(exc)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success, response.message = True, "enabled" if self.enabled else "disabled"
        return response
