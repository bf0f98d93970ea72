"""StereoSlam end to end on rendered stereo sequences (a textured box room, see synthetic/box_room.py):
features, stereo matching, tracking accuracy against ground truth for learned (descriptor oracle) and ORB features,
threaded local mapping, loop closure, relocalisation, map save/load and exports."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.trajectory import (
    Trajectory,
    read_kitti_poses,
    read_tum_trajectory,
    write_trajectory,
)
from dense_descriptors_ros.metrics.trajectory import absolute_trajectory_error
from dense_descriptors_ros.slam.features import (
    FeatureConfig,
    LearnedDenseFeatures,
    OrbFeatures,
)
from dense_descriptors_ros.slam.map_io import (
    MapMismatchError,
    read_ply,
    voxel_downsample,
    write_ply,
)
from dense_descriptors_ros.slam.stereo_matching import match_stereo_rows
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence

CAMERA = StereoCamera(fx=260.0, fy=260.0, cx=159.5, cy=119.5, baseline=0.2, width=320, height=240)


@pytest.fixture(scope="module")
def arc_sequence():
    """30 frames along a third of a circle (about 4 m, 120 degrees of turn)."""
    return synthetic_stereo_sequence(CAMERA, 30, turns=30 / 90)


@pytest.fixture(scope="module")
def loop_sequence():
    """A full circle and a bit more, 60 frames per turn: the camera comes back to where it started."""
    return synthetic_stereo_sequence(CAMERA, 70, turns=70 / 60)


def ground_truth(frames) -> Trajectory:
    return Trajectory(np.array([f.stamp for f in frames]), np.array([f.T_world_cam for f in frames]))


def run_slam(
    frames, feature_type="learned", synchronous=True, bundle_adjustment=True, loop_closure=True, model_id="oracle-16"
):
    config = StereoSlamConfig(feature_type=feature_type)
    config.mapping.synchronous = synchronous
    config.mapping.enabled = bundle_adjustment
    config.loop_closure.enabled = loop_closure
    slam = StereoSlam(CAMERA, config, model_id=model_id, initial_pose=frames[0].T_world_cam)
    results = [slam.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc) for f in frames]
    slam.wait_for_mapping(timeout=60)
    return slam, results


# ---- features and stereo matching ---------------------------------------------------------------------------
def test_orb_hamming_distance_matches_opencv(arc_sequence):
    import cv2

    orb = OrbFeatures()
    f = orb.extract(arc_sequence[0].left)
    assert len(f) > 100 and f.descriptors.dtype == np.uint8
    d = orb.distances(f.descriptors[:20], f.descriptors[:30])
    assert d[3, 7] == cv2.norm(f.descriptors[3], f.descriptors[7], cv2.NORM_HAMMING)
    pairs = zip(f.descriptors[:20], f.descriptors[10:30], strict=True)
    expected = [cv2.norm(a, b, cv2.NORM_HAMMING) for a, b in pairs]
    assert np.allclose(orb.paired_distances(f.descriptors[:20], f.descriptors[10:30]), expected)


@pytest.mark.parametrize("detector", ["gftt", "fast", "saliency"])
def test_learned_stereo_matches_have_correct_depth(arc_sequence, detector):
    frame = arc_sequence[0]
    feats = LearnedDenseFeatures(FeatureConfig(detector=detector))
    left = feats.extract(frame.left, frame.left_desc)
    right = feats.extract(frame.right, frame.right_desc)
    assert left.descriptors.shape[1] == 16
    assert np.allclose(np.linalg.norm(left.descriptors, axis=1), 1.0, atol=1e-5)
    uR = match_stereo_rows(left, right, feats, CAMERA)
    ok = np.isfinite(uR)
    assert ok.sum() > 100
    # every matched point lies on a wall of the 10 x 4 x 10 m room seen from the trajectory
    pc = CAMERA.triangulate(left.keypoints[ok, 0], left.keypoints[ok, 1], uR[ok])
    pw = pc @ frame.T_world_cam[:3, :3].T + frame.T_world_cam[:3, 3]
    relative_gap = np.min(np.abs(np.abs(pw) - np.array([5.0, 2.0, 5.0])), axis=1) / pc[:, 2]
    tolerance = 0.1 if detector == "saliency" else 0.05  # saliency peaks are whole pixels, corners sub-pixel
    assert np.median(relative_gap) < tolerance / 3
    assert np.mean(relative_gap < tolerance) > 0.8


def test_learned_features_need_the_descriptor_image(arc_sequence):
    with pytest.raises(ValueError, match="descriptor image"):
        LearnedDenseFeatures().extract(arc_sequence[0].left)
    with pytest.raises(ValueError, match="does not support detector"):
        OrbFeatures(FeatureConfig(detector="saliency"))


# ---- tracking ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("feature_type, max_ate_percent", [("learned", 0.5), ("orb", 1.0)])
def test_tracks_a_rendered_sequence(arc_sequence, feature_type, max_ate_percent):
    slam, results = run_slam(arc_sequence, feature_type)
    gt = ground_truth(arc_sequence)
    assert all(r.state in (TrackingState.TRACKING, TrackingState.RELOCALIZED) for r in results)
    assert sum(r.state == TrackingState.TRACKING for r in results) >= len(results) - 2
    ate = absolute_trajectory_error(slam.trajectory(), gt)
    assert ate["rmse"] < max_ate_percent / 100 * gt.path_length()
    assert slam.mapper.stats.bundle_adjustments >= 3
    assert len(slam.map.keyframes) >= 4 and len(slam.map_points()) > 500
    for r in results[1:]:
        assert len(r.tracked_pixels) >= 50 and CAMERA.in_image(r.tracked_pixels).all()
    slam.close()


def test_threaded_local_mapping_keeps_tracking(arc_sequence):
    slam, results = run_slam(arc_sequence, "learned", synchronous=False)
    assert slam.mapper.stats.bundle_adjustments >= 1
    assert all(r.state != TrackingState.LOST for r in results)
    gt = ground_truth(arc_sequence)
    assert absolute_trajectory_error(slam.trajectory(), gt)["rmse"] < 0.01 * gt.path_length()
    slam.close()


def test_loop_closure_fires_and_lowers_ate(loop_sequence):
    gt = ground_truth(loop_sequence)
    # Without BA the odometry drifts enough for the loop correction to matter.
    open_slam, _ = run_slam(loop_sequence, bundle_adjustment=False, loop_closure=False)
    closed_slam, results = run_slam(loop_sequence, bundle_adjustment=False, loop_closure=True)
    events = [r.loop_closure for r in results if r.loop_closure is not None]
    assert len(events) >= 1
    assert events[0].match_keyframe <= 2  # closed against the start of the circle
    ate_open = absolute_trajectory_error(open_slam.trajectory(), gt)["rmse"]
    ate_closed = absolute_trajectory_error(closed_slam.trajectory(), gt)["rmse"]
    assert ate_closed < 0.8 * ate_open
    end_open = np.linalg.norm(open_slam.trajectory().poses[-1][:3, 3] - gt.poses[-1][:3, 3])
    end_closed = np.linalg.norm(closed_slam.trajectory().poses[-1][:3, 3] - gt.poses[-1][:3, 3])
    assert end_closed < end_open


# ---- map files ------------------------------------------------------------------------------------------------
def test_map_save_load_round_trip_and_relocalisation(arc_sequence, tmp_path):
    slam, _ = run_slam(arc_sequence[:15], "learned")
    folder = slam.save_map(tmp_path / "map")
    before = slam.map.to_arrays()

    other = StereoSlam(CAMERA, StereoSlamConfig(), model_id="oracle-16")
    other.load_map(folder)
    after = other.map.to_arrays()
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    # Relocalise a frame of the saved stretch in the loaded map.
    f = arc_sequence[10]
    r = other.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc)
    assert r.state == TrackingState.RELOCALIZED
    assert np.linalg.norm(r.T_world_cam[:3, 3] - f.T_world_cam[:3, 3]) < 0.05
    f = arc_sequence[11]
    assert other.process(f.stamp, f.left, f.right, f.left_desc, f.right_desc).state == TrackingState.TRACKING

    with pytest.raises(MapMismatchError, match="descriptor model"):
        StereoSlam(CAMERA, StereoSlamConfig(), model_id="another-model").load_map(folder)
    with pytest.raises(MapMismatchError, match="features"):
        StereoSlam(CAMERA, StereoSlamConfig(feature_type="orb")).load_map(folder)
    slam.close()
    other.close()


def test_trajectory_and_cloud_exports(arc_sequence, tmp_path):
    slam, _ = run_slam(arc_sequence[:8], "learned")
    traj = slam.trajectory()
    write_trajectory(traj, tmp_path / "traj.tum", "tum")
    write_trajectory(traj, tmp_path / "traj.kitti", "kitti")
    tum = read_tum_trajectory(tmp_path / "traj.tum")
    kitti = read_kitti_poses(tmp_path / "traj.kitti")
    assert np.allclose(tum.poses, traj.poses, atol=1e-6) and np.allclose(tum.timestamps, traj.timestamps)
    assert np.allclose(kitti.poses, traj.poses, atol=1e-6)
    points = slam.map_points()
    write_ply(tmp_path / "map.ply", points)
    assert np.allclose(read_ply(tmp_path / "map.ply"), points, atol=1e-5)
    cloud = voxel_downsample(points, 0.25)
    assert 0 < len(cloud) < len(points)
    keys = np.floor(cloud / 0.25)
    assert len(np.unique(keys, axis=0)) == len(cloud)  # one point per voxel
    slam.close()


def test_bad_inputs_are_rejected(arc_sequence):
    f = arc_sequence[0]
    slam = StereoSlam(CAMERA, StereoSlamConfig(feature_type="learned"))
    with pytest.raises(ValueError, match="dense descriptor image"):
        slam.process(0.0, f.left, f.right)
    with pytest.raises(ValueError, match="camera is 320x240"):
        slam.process(0.0, f.left[:100], f.right[:100], f.left_desc[:100], f.right_desc[:100])
    with pytest.raises(ValueError, match="descriptor image must be"):
        slam.process(0.0, f.left, f.right, f.left_desc[:, :, :1].squeeze(-1), f.right_desc)
    slam.process(1.0, f.left, f.right, f.left_desc, f.right_desc)
    with pytest.raises(ValueError, match="stamps must increase"):
        slam.process(0.5, f.left, f.right, f.left_desc, f.right_desc)
    with pytest.raises(ValueError, match="feature_type"):
        StereoSlam(CAMERA, StereoSlamConfig(feature_type="sift"))
    slam.close()
