"""Localisation only: track in a loaded map without changing it, relocalise after losing it, never re-initialise."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

CAMERA = StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory):
    frames = synthetic_stereo_sequence(CAMERA, 24, turns=24 / 90)
    config = StereoSlamConfig()
    config.mapping.synchronous = True
    slam = StereoSlam(CAMERA, config, model_id="oracle-16", initial_pose=frames[0].T_world_cam)
    for f in frames:
        slam.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc)
    folder = slam.save_map(tmp_path_factory.mktemp("map"))
    slam.close()
    return frames, folder


def test_localization_tracks_in_a_loaded_map_without_changing_it(saved_map):
    frames, folder = saved_map
    slam = StereoSlam(CAMERA, StereoSlamConfig(), model_id="oracle-16", localization_only=True)
    first = frames[4]
    nothing = slam.process(0.0, first.left, first.right, first.left_desc, first.right_desc)
    assert nothing.state == TrackingState.LOST and not nothing.has_pose  # no map loaded yet
    slam.load_map(folder)
    before = slam.map.to_arrays()
    results = []
    for k, f in enumerate(frames[4:16]):
        results.append(slam.process(1.0 + 0.1 * k, f.left, f.right, f.left_desc, f.right_desc))
    assert results[0].state == TrackingState.RELOCALIZED
    assert all(r.state == TrackingState.TRACKING and not r.is_keyframe for r in results[1:])
    for r, f in zip(results, frames[4:16], strict=True):
        assert np.linalg.norm(r.T_world_cam[:3, 3] - f.T_world_cam[:3, 3]) < 0.02
        assert r.covariance is not None and np.linalg.eigvalsh(r.covariance).min() > 0
    # A frame that shows nothing: lost, the prediction is kept, and no new map segment is started.
    blank = np.zeros_like(first.left)
    for k in range(8):  # more than reinit_after_lost_frames
        lost = slam.process(3.0 + 0.1 * k, blank, blank, first.left_desc, first.right_desc)
        assert lost.state == TrackingState.LOST and lost.has_pose and lost.covariance is None
    back = frames[10]
    assert slam.process(5.0, back.left, back.right, back.left_desc, back.right_desc).state == TrackingState.RELOCALIZED
    after = slam.map.to_arrays()
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert slam.mapper is None  # no local mapping, no GTSAM worker
    slam.close()
