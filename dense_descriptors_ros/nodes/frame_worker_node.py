"""FrameWorkerNode: a ConfiguredLifecycleNode whose frames are processed by a newest-frame worker thread.

It adds the worker (subscriptions feed ``self.worker.put``; ``process`` handles one item), the bad-input counter
and the ``~/enable`` service. Used by the descriptor, tracker and SLAM nodes.
"""

from __future__ import annotations

from typing import Any

from std_srvs.srv import SetBool

from dense_descriptors_ros.nodes.configured_node import ConfiguredLifecycleNode
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.latest_frame_worker import LatestFrameWorker

EXIT_WAIT = 0.5  # seconds a closing node waits for the frame in progress


class FrameWorkerNode(ConfiguredLifecycleNode):
    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.problems = InputProblems(self.get_logger())
        self.worker = LatestFrameWorker(self._guarded_process, self._on_worker_error, name=f"{node_name}-worker")
        self.enabled = True
        self.create_service(SetBool, "~/enable", self._on_enable)

    def process(self, item: Any) -> None:
        raise NotImplementedError

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

    def _on_worker_error(self, exc: BaseException) -> None:
        self.problems.report(type(exc).__name__, str(exc))

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success, response.message = True, "enabled" if self.enabled else "disabled"
        return response
