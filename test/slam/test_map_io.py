"""Map files of a StereoSlam run: save/load round trip with relocalisation in the loaded map, refusal of a map
made with another model or other features, trajectory (TUM/KITTI) and point cloud (PLY) exports."""

import numpy as np
import pytest

from dense_descriptors_ros.geometry.trajectory import read_kitti_poses, read_tum_trajectory, write_trajectory
from dense_descriptors_ros.slam.map_io import MapMismatchError, read_ply, voxel_downsample, write_ply
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState


def test_map_save_load_round_trip_and_relocalisation(arc_sequence, tmp_path, box_room_camera, run_slam):
    slam, _ = run_slam(arc_sequence[:15], "learned")
    folder = slam.save_map(tmp_path / "map")
    before = slam.map.to_arrays()

    other = StereoSlam(box_room_camera, StereoSlamConfig(), model_id="oracle-16")
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
        StereoSlam(box_room_camera, StereoSlamConfig(), model_id="another-model").load_map(folder)
    with pytest.raises(MapMismatchError, match="features"):
        StereoSlam(box_room_camera, StereoSlamConfig(feature_type="orb")).load_map(folder)
    slam.close()
    other.close()


def test_trajectory_and_cloud_exports(arc_sequence, tmp_path, run_slam):
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
