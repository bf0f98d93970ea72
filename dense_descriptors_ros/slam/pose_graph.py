"""SE(3) pose graph on GTSAM: keyframe poses linked by relative-pose constraints (BetweenFactorPose3), one held.

Loop closure builds it from the keyframes (consecutive keyframes linked by their current relative pose) plus every
loop constraint found so far, and moves the map with the result (loop_closure.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dense_descriptors_ros.slam.gtsam_support import require_gtsam

# Unit sigmas on every constraint (radians and metres), as ORB-SLAM's essential graph uses identity information.
EDGE_SIGMA = 1.0
FIXED_SIGMA = 1e-6


@dataclass
class PoseGraphEdge:
    """Node ``j`` seen from node ``i``: T_i_j = T_world_i^-1 T_world_j."""

    i: int
    j: int
    T_i_j: np.ndarray


def optimize_pose_graph(poses: np.ndarray, edges: list[PoseGraphEdge], fixed: int = 0, iterations: int = 50):
    """Poses (N, 4, 4) T_world_i after Levenberg-Marquardt on the graph, node ``fixed`` held where it is."""
    gtsam = require_gtsam()
    X = gtsam.symbol_shorthand.X
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    for k, T in enumerate(poses):
        values.insert(X(k), gtsam.Pose3(T))
    graph.add(
        gtsam.PriorFactorPose3(X(fixed), gtsam.Pose3(poses[fixed]), gtsam.noiseModel.Isotropic.Sigma(6, FIXED_SIGMA))
    )
    noise = gtsam.noiseModel.Isotropic.Sigma(6, EDGE_SIGMA)
    for e in edges:
        graph.add(gtsam.BetweenFactorPose3(X(e.i), X(e.j), gtsam.Pose3(e.T_i_j), noise))
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(iterations)
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    return np.array([result.atPose3(X(k)).matrix() for k in range(len(poses))])
