"""The GTSAM pose graph: exact on consistent constraints, and a loop constraint pulls a drifted circle closed."""

import numpy as np

from dense_descriptors_ros.geometry.se3 import invert_pose, se3_exp
from dense_descriptors_ros.slam.pose_graph import PoseGraphEdge, optimize_pose_graph


def circle(n: int, radius: float = 3.0) -> np.ndarray:
    """n poses T_world_i on a circle, each looking along the tangent; the last one is next to the first."""
    poses = []
    for k in range(n):
        angle = 2 * np.pi * k / n
        T = se3_exp(np.array([0.0, 0.0, 0.0, 0.0, -angle, 0.0]))
        T[:3, 3] = [radius * np.cos(angle), 0.0, radius * np.sin(angle)]
        poses.append(T)
    return np.array(poses)


def relative(poses: np.ndarray, i: int, j: int) -> np.ndarray:
    return invert_pose(poses[i]) @ poses[j]


def test_consistent_constraints_are_met_exactly():
    truth = circle(12)
    edges = [PoseGraphEdge(k, k + 1, relative(truth, k, k + 1)) for k in range(11)]
    edges.append(PoseGraphEdge(0, 11, relative(truth, 0, 11)))
    rng = np.random.default_rng(0)
    start = truth.copy()
    for k in range(1, 12):
        start[k] = truth[k] @ se3_exp(np.concatenate([rng.normal(0, 0.1, 3), rng.normal(0, 0.05, 3)]))
    result = optimize_pose_graph(start, edges, fixed=0)
    np.testing.assert_allclose(result, truth, atol=1e-6)


def test_a_loop_constraint_closes_a_drifted_circle():
    n = 24
    truth = circle(n)
    # Odometry with a small heading bias per step: dead reckoning ends far from where the circle closes.
    bias = se3_exp(np.array([0.01, 0.0, 0.0, 0.0, 0.01, 0.0]))
    odometry = [relative(truth, k, k + 1) @ bias for k in range(n - 1)]
    drifted = [truth[0]]
    for step in odometry:
        drifted.append(drifted[-1] @ step)
    drifted = np.array(drifted)
    edges = [PoseGraphEdge(k, k + 1, odometry[k]) for k in range(n - 1)]
    open_end = np.linalg.norm(drifted[-1, :3, 3] - truth[-1, :3, 3])
    assert open_end > 0.5

    closed = optimize_pose_graph(drifted, [*edges, PoseGraphEdge(0, n - 1, relative(truth, 0, n - 1))], fixed=0)
    closed_err = np.linalg.norm(closed[:, :3, 3] - truth[:, :3, 3], axis=1)
    np.testing.assert_allclose(closed[0], truth[0], atol=1e-6)  # the held node stays
    assert closed_err[-1] < 0.05 * open_end  # the loop is closed
    assert closed_err.max() < 0.3 * np.linalg.norm(drifted[:, :3, 3] - truth[:, :3, 3], axis=1).max()
    # Without the loop constraint the graph has nothing to correct: the odometry stays as it is.
    np.testing.assert_allclose(optimize_pose_graph(drifted, edges, fixed=0), drifted, atol=1e-6)
