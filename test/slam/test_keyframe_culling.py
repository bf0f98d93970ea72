"""Keyframe culling: a camera that stays in one place keeps a bounded map, and frames that named a culled keyframe
keep their poses through its parent."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.se3 import se3_exp
from dense_descriptors_ros.slam.map import KeyFrame, SlamMap
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

CAMERA = StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def back_and_forth():
    """200 frames of a camera panning back and forth over the same few degrees (a robot that stays put)."""
    base = synthetic_stereo_sequence(CAMERA, 10, turns=0.05)
    order = [i for _ in range(10) for i in [*range(10), *range(9, -1, -1)]]
    return base, order


def _run(base, order, cull: bool):
    config = StereoSlamConfig()
    config.mapping.synchronous = True
    config.mapping.cull_keyframes = cull
    slam = StereoSlam(CAMERA, config, model_id="oracle-16", initial_pose=base[0].T_world_cam)
    counts = []
    for n, i in enumerate(order):
        f = base[i]
        slam.process(0.1 * n, f.left, f.right, f.left_desc, f.right_desc)
        if n % 40 == 39:
            counts.append(len(slam.map.keyframes))
    slam.close()
    trajectory = slam.trajectory()
    error = max(np.linalg.norm(trajectory.poses[n][:3, 3] - base[i].T_world_cam[:3, 3]) for n, i in enumerate(order))
    return slam, counts, error


def test_a_camera_that_stays_put_keeps_a_bounded_map(back_and_forth):
    _, growing_counts, growing_error = _run(*back_and_forth, cull=False)
    bounded, bounded_counts, bounded_error = _run(*back_and_forth, cull=True)
    assert growing_counts[-1] >= 10 and growing_counts[-1] > growing_counts[1]  # a keyframe every 20 frames
    assert bounded.mapper.stats.culled_keyframes >= 5
    assert max(bounded_counts) <= 6 and bounded_counts[-1] == bounded_counts[1]  # no growth after the start
    # The trajectory still resolves every frame (some named keyframes that are gone) to where it was.
    assert bounded_error < 0.03 and growing_error < 0.03


def test_frames_of_a_culled_keyframe_resolve_through_its_parent():
    slam_map = SlamMap(4, np.float32)
    poses = [se3_exp(np.array([0.5 * k, 0.0, 0.1 * k, 0.0, 0.05 * k, 0.0])) for k in range(3)]
    ids = slam_map.add_points(np.eye(3) * 5.0, np.ones((3, 4), np.float32), np.zeros(3), reference_kf=1)
    for k, T in enumerate(poses):
        point_ids = np.array([ids[0], ids[1], ids[2]]) if k else np.array([ids[0], -1, -1])
        slam_map.add_keyframe(
            KeyFrame(k, float(k), T, np.zeros((3, 2)), np.ones((3, 4), np.float32), np.zeros(3), point_ids)
        )
    slam_map.remove_keyframe(1, parent_id=2)
    assert 1 not in slam_map.keyframes
    parent, T_parent_culled = slam_map.resolve_keyframe(1)
    assert parent == 2
    np.testing.assert_allclose(slam_map.keyframes[2].T_world_cam @ T_parent_culled, poses[1], atol=1e-12)
    assert (slam_map.reference_keyframe[ids] == 2).all()  # its points now move with the parent
    kfs, _, _ = slam_map.observations()
    assert 1 not in kfs
    # A chain: the parent is culled too, onto keyframe 0.
    slam_map.remove_keyframe(2, parent_id=0)
    parent, T = slam_map.resolve_keyframe(1)
    assert parent == 0
    np.testing.assert_allclose(slam_map.keyframes[0].T_world_cam @ T, poses[1], atol=1e-12)
    assert slam_map.resolve_keyframe(7) is None
