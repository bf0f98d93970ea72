"""Flow labels from scripted raw flows, so the chain, cycle and direct-flow checks have a known answer.

Frames are flat grey images whose value is their index; ``ScriptedFlowLabeler`` looks the raw flow between two of
them up in a table instead of estimating it. ``drifting_flows`` scripts a scene that moves 1 px right per frame in
which the flow of a band of rows drifts: each forward step there moves ``drift_px`` too far.
"""

from __future__ import annotations

import numpy as np

from dense_descriptors_ros.learning.flow import FlowConfig, FlowLabeler


class ScriptedFlowLabeler(FlowLabeler):
    def __init__(self, table: dict[tuple[int, int], np.ndarray], config: FlowConfig | None = None) -> None:
        super().__init__(config)
        self.table = table
        self.calls = 0

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.table[(int(a[0, 0]), int(b[0, 0]))]


def scripted_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    return [np.full((height, width), k, np.uint8) for k in range(count)]


def drifting_flows(
    count: int,
    height: int,
    width: int,
    band: slice,
    drift_px: float,
    symmetric: bool = False,
    step_px: float = 1.0,
) -> dict[tuple[int, int], np.ndarray]:
    """Raw flows between every two of ``count`` frames (in their pixels).

    Consecutive steps move every pixel ``step_px`` right, and the rows ``band`` ``drift_px`` more. Their backward
    flows undo ``step_px`` only (the drift breaks the cycle), or with ``symmetric`` the drifted motion too (the
    forward and the backward flow drift alike, as DIS does). Flows between frames further apart are the true
    motion ((j - i) ``step_px``).
    """
    table = {}
    for i in range(count):
        for j in range(count):
            flow = np.zeros((height, width, 2), np.float32)
            flow[..., 0] = (j - i) * step_px
            if j == i + 1:
                flow[band, :, 0] += drift_px
            if j == i - 1 and symmetric:
                flow[band, :, 0] -= drift_px
            table[(i, j)] = flow
    return table
