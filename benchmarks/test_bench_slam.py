"""StereoSlam with learned features next to ORB inside the same SLAM (papers/003 section 5.4 protocol).

Run: `bash scripts/run_tests.sh -m bench -s benchmarks/test_bench_slam.py` (one JSON line per test).

Sequences:
- ``gl_room``: synthetic/stereo_renderer.py, a textured room with blocks (occlusions), 240 rectified 320x240 pairs
  along a closed loop driven 1.15 times (so loop closure can fire), 10 Hz, ground truth poses.
- ``box_room``: synthetic/box_room.py, a box room ray-cast with a descriptor oracle (exactly view-invariant dense
  descriptors: the ceiling of what a learned model can give this SLAM), 120 pairs, 1.3 turns.
- ``euroc_mh01`` (real, ../shared/data or $DDR_DATA_DIR, skipped when absent): EuRoC MH_01 frames 100-299, 200
  stereo pairs at 20 Hz, 3.3 m of handheld motion, rectified with OpenCV stereoRectify; ground truth is the cam0 pose
  (re-expressed in the rectified left camera).
- ``euroc_v101_micro`` (real, skipped when absent): 20 EuRoC pairs of a rig standing still (1.7 mm of motion), so
  the figure is the drift in metres, not an ATE.

Feature types, each in the same SLAM with the same keypoints (GFTT, grid spread):
- ``orb``: OpenCV ORB descriptors, Hamming distance: the baseline.
- ``learned_untrained``: an untrained DescriptorNet (random weights, seed 0), a floor rather than a result.
- ``learned_model``: the checkpoint folder in $DDR_SLAM_MODEL, when set.
- ``oracle`` (box_room only, which is run with orb and oracle): the oracle descriptor images.
The network runs at most $DDR_SLAM_MAX_SIDE (default 160) px on the CPU and its descriptors are upsampled; it runs
before each frame is handed to the SLAM, outside the timed tracking.

Figures per run: ATE RMSE (SE(3) Umeyama alignment) in metres and in % of the path length (and evo's APE RMSE of
the same trajectories, on the real sequence), RPE (1 frame apart: translation m and rotation deg),
tracked/lost/relocalised frames, keyframes, loop closures, tracking ms per frame (features + stereo + tracking, and
each of the three), BA ms per local BA, and the load average (1, 5, 15 min) at the start and the end, since the ms
are wall times on a shared machine. Local mapping runs synchronously for the accuracy figures, so results do not
depend on the machine's load. ``gl_room_loop_stall`` replays the GL room in real time (10 Hz) with the mapping
thread running and reports the longest time one frame took (the tracking stall) overall and at the frames where a
loop closed.
A trajectory plot (top view) is written next to the JSON line ($DDR_BENCH_OUT, default a pytest temp folder).
``test_pose_only_backends`` times tracking's numpy pose-only refinement against the same problem on GTSAM.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.geometry.camera import StereoCamera
from dense_descriptors_ros.geometry.trajectory import Trajectory
from dense_descriptors_ros.metrics.trajectory import absolute_trajectory_error, align_trajectory, relative_pose_error
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.model.network import DescriptorNet, ModelConfig
from dense_descriptors_ros.slam.stereo_slam import StereoSlam, StereoSlamConfig, TrackingState
from dense_descriptors_ros.synthetic.box_room import synthetic_stereo_sequence
from dense_descriptors_ros.synthetic.dataset_folders import write_stereo_dataset

pytestmark = pytest.mark.bench

GL_FRAMES = 240
BOX_FRAMES = 120
NETWORK_MAX_SIDE = int(os.environ.get("DDR_SLAM_MAX_SIDE", "160"))


def descriptor_engines() -> dict[str, tuple[DescriptorEngine, str]]:
    """The networks of the learned rows: the untrained floor, and the $DDR_SLAM_MODEL checkpoint when set."""
    torch.manual_seed(0)
    engines = {
        "learned_untrained": (
            DescriptorEngine(DescriptorNet(ModelConfig(pretrained=False)), device="cpu", max_side=NETWORK_MAX_SIDE),
            f"untrained DescriptorNet (random weights, seed 0) at max_side {NETWORK_MAX_SIDE}",
        )
    }
    folder = os.environ.get("DDR_SLAM_MODEL")
    if folder:
        engine = DescriptorEngine.from_checkpoint(folder, device="cpu", max_side=NETWORK_MAX_SIDE)
        engines["learned_model"] = (engine, f"checkpoint {folder} at max_side {NETWORK_MAX_SIDE}")
    return engines


def rgb_descriptor_fn(engine: DescriptorEngine) -> Callable[[np.ndarray], np.ndarray]:
    """Dense descriptors of an RGB or gray image (gray is repeated into three channels)."""

    def compute(image: np.ndarray) -> np.ndarray:
        return engine.compute(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image)

    return compute


def run(
    camera: StereoCamera,
    feature_type: str,
    frames: list[dict],
    model_id: str,
    descriptor_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    realtime: bool = False,
) -> dict:
    """Run StereoSlam over prepared frames (dicts of stamp, left, right and, for the oracle, left_desc/right_desc).

    ``realtime``: the mapping thread runs and frames arrive at their stamps (late frames are processed at once);
    the per-frame wall time of ``process`` (descriptors excluded) is recorded.
    """
    config = StereoSlamConfig(feature_type=feature_type)
    config.mapping.synchronous = not realtime
    slam = StereoSlam(camera, config, model_id=model_id)
    results, wall_ms = [], []
    start = time.perf_counter()
    for f in frames:
        left_desc, right_desc = f.get("left_desc"), f.get("right_desc")
        if descriptor_fn is not None and left_desc is None:
            left_desc, right_desc = descriptor_fn(f["left"]), descriptor_fn(f["right"])
        if realtime:
            time.sleep(max(0.0, f["stamp"] - frames[0]["stamp"] - (time.perf_counter() - start)))
        t0 = time.perf_counter()
        results.append(slam.process(f["stamp"], f["left"], f["right"], left_desc, right_desc))
        wall_ms.append(1e3 * (time.perf_counter() - t0))
    slam.wait_for_mapping()
    tracked = [r for r in results if not r.is_keyframe]
    out = {
        "trajectory": slam.trajectory(),
        "tracking_ms": float(np.mean([r.timings_ms["total_ms"] for r in tracked] or [0.0])),
        # Where a non-keyframe frame's time goes: both images' features, stereo matching, tracking proper.
        "stage_ms": {
            k: float(np.mean([r.timings_ms[k] for r in tracked] or [0.0]))
            for k in ("features_ms", "stereo_ms", "tracking_ms")
        },
        "tracking_ms_all": float(np.mean([r.timings_ms["total_ms"] for r in results])),
        "wall_ms": np.array(wall_ms),
        "loop_frames": [i for i, r in enumerate(results) if r.loop_closure is not None],
        "ba_ms": float(1e3 * np.mean(slam.mapper.stats.ba_seconds)) if slam.mapper.stats.ba_seconds else None,
        "keyframes": len(slam.map.keyframes),
        "map_points": len(slam.map_points()),
        "lost": sum(r.state == TrackingState.LOST for r in results),
        "relocalised": sum(r.state == TrackingState.RELOCALIZED for r in results),
        "loop_closures": len(slam.loop_closer.events),
        "pose_graph_ms": [round(e.pose_graph_ms, 1) for e in slam.loop_closer.events],
        "culled_keyframes": slam.mapper.stats.culled_keyframes,
        "mean_tracked": float(np.mean([len(r.tracked_point_ids) for r in results])),
    }
    slam.close()
    return out


def evo_ate_rmse(estimate: Trajectory, reference: Trajectory) -> float:
    """evo's APE RMSE (translation, SE(3) Umeyama alignment, timestamps associated within 20 ms)."""
    from evo.core import metrics, sync
    from evo.core.trajectory import PoseTrajectory3D

    ref, est = sync.associate_trajectories(
        PoseTrajectory3D(poses_se3=list(reference.poses), timestamps=reference.timestamps.copy()),
        PoseTrajectory3D(poses_se3=list(estimate.poses), timestamps=estimate.timestamps.copy()),
        max_diff=0.02,
    )
    est.align(ref, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    return float(ape.get_statistic(metrics.StatisticsType.rmse))


def scores(result: dict, reference: Trajectory, with_evo: bool = False) -> dict:
    est = result["trajectory"]
    try:
        ate = absolute_trajectory_error(est, reference)["rmse"]
        rpe = relative_pose_error(est, reference, delta=1)
        accuracy = {
            "ate_rmse_m": round(ate, 4),
            "ate_percent_of_path": round(100 * ate / reference.path_length(), 3),
            "rpe_trans_m": round(rpe["translation"]["rmse"], 4),
            "rpe_rot_deg": round(rpe["rotation_deg"]["rmse"], 3),
        }
        if with_evo:
            accuracy["evo_ate_rmse_m"] = round(evo_ate_rmse(est, reference), 4)
    except ValueError as err:  # e.g. a trajectory that never left its start: no alignment is defined
        accuracy = {"ate_rmse_m": None, "ate_error": str(err)}
    return {
        **accuracy,
        "tracking_ms_per_frame": round(result["tracking_ms"], 1),
        "tracking_stages_ms": {k.removesuffix("_ms"): round(v, 1) for k, v in result["stage_ms"].items()},
        "tracking_ms_incl_keyframes": round(result["tracking_ms_all"], 1),
        "ba_ms": None if result["ba_ms"] is None else round(result["ba_ms"], 1),
        **{
            k: result[k]
            for k in ("keyframes", "culled_keyframes", "map_points", "lost", "relocalised", "loop_closures")
        },
        "mean_tracked": round(result["mean_tracked"], 1),
    }


def plot(path: Path, panels: list[tuple[str, Trajectory, dict[str, Trajectory]]], up_axis: str = "y") -> None:
    """Top views of SE(3)-aligned estimates over the reference; ``up_axis`` of the reference's frame: y for the
    rendered rooms (optical axes, ground plane x-z), z for EuRoC's world frame (ground plane x-y)."""
    b = 2 if up_axis == "y" else 1  # the horizontal axis next to x
    fig = Figure(figsize=(6 * len(panels), 5))
    for i, (title, reference, estimates) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        p = reference.positions
        ax.plot(p[:, 0], p[:, b], "k-", lw=2, label="ground truth")
        for name, est in estimates.items():
            try:
                q = align_trajectory(est, reference, "se3").positions
            except ValueError:  # degenerate estimate: draw it as it is
                q = est.positions
            ax.plot(q[:, 0], q[:, b], "-", lw=1, label=name)
        ax.set_title(f"{title} (top view, x-{'xyz'[b]}, m)")
        ax.set_aspect("equal")
        ax.legend()
    fig.savefig(path, dpi=90)


def output_dir(tmp_path: Path) -> Path:
    out_dir = Path(os.environ.get("DDR_BENCH_OUT", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


@pytest.mark.timeout(3600)  # the network runs on 480 images per learned row on the CPU
def test_slam_rendered_rooms(tmp_path):
    torch.set_num_threads(2)
    out_dir = output_dir(tmp_path)
    engines = descriptor_engines()
    figures: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "loadavg_start": os.getloadavg(),
        "learned_models": {k: v[1] for k, v in engines.items()},
    }
    panels = []

    # --- gl_room: rendered room with occlusions -----------------------------------------------------------------
    seq = write_stereo_dataset(out_dir / "gl_room", seed=0, n_frames=GL_FRAMES, progress=False)
    camera = StereoCamera.from_intrinsics(seq.K, seq.baseline, seq.width, seq.height)
    frames = [{"stamp": float(seq.timestamps[t]), "left": seq.left[t], "right": seq.right[t]} for t in range(len(seq))]
    reference = seq.trajectory()  # relative to the first frame, where the SLAM starts
    gl = {"orb": run(camera, "orb", frames, "orb")}
    for name, (engine, note) in engines.items():
        gl[name] = run(camera, "learned", frames, note, rgb_descriptor_fn(engine))
    figures["gl_room"] = {
        "frames": len(seq),
        "path_m": round(reference.path_length(), 2),
        **{name: scores(r, reference) for name, r in gl.items()},
    }
    panels.append(("gl_room", reference, {k: v["trajectory"] for k, v in gl.items()}))

    # --- the same room replayed in real time with the mapping thread: tracking stalls -----------------------------
    live = run(camera, "orb", frames, "orb", realtime=True)
    loop_ms = [float(live["wall_ms"][i]) for i in live["loop_frames"]]
    figures["gl_room_loop_stall"] = {
        "features": "orb",
        "frame_period_ms": round(1e3 * float(np.median(np.diff(seq.timestamps))), 1),
        "loop_closures": live["loop_closures"],
        "pose_graph_ms": live["pose_graph_ms"],  # solved in the mapping thread (GTSAM worker process)
        "loop_frame_ms": [round(v, 1) for v in loop_ms],  # the frames at which a correction was applied
        "max_frame_ms": round(float(live["wall_ms"].max()), 1),
        "p95_frame_ms": round(float(np.percentile(live["wall_ms"], 95)), 1),
        "median_frame_ms": round(float(np.median(live["wall_ms"])), 1),
        "ate_percent_of_path": scores(live, reference)["ate_percent_of_path"],
    }

    # --- box_room: descriptor oracle ------------------------------------------------------------------------------
    box_camera = StereoCamera(260.0, 260.0, 159.5, 119.5, 0.2, 320, 240)
    box = synthetic_stereo_sequence(box_camera, BOX_FRAMES, turns=1.3)
    first_inv = np.linalg.inv(box[0].T_world_cam)
    box_ref = Trajectory(np.array([f.stamp for f in box]), first_inv @ np.array([f.T_world_cam for f in box]))
    box_frames = [
        {"stamp": f.stamp, "left": f.left, "right": f.right, "left_desc": f.left_desc, "right_desc": f.right_desc}
        for f in box
    ]
    boxr = {
        "orb": run(box_camera, "orb", box_frames, "orb"),
        "oracle": run(box_camera, "learned", box_frames, "oracle"),
    }
    figures["box_room"] = {
        "frames": len(box),
        "path_m": round(box_ref.path_length(), 2),
        **{name: scores(r, box_ref) for name, r in boxr.items()},
    }
    panels.append(("box_room", box_ref, {k: v["trajectory"] for k, v in boxr.items()}))

    # --- EuRoC V1_01 micro: static rig, drift -----------------------------------------------------------------
    try:
        euroc = real_datasets.load_euroc()
    except real_datasets.DatasetMissing as err:
        figures["euroc_v101_micro"] = f"skipped: {err}"
    else:
        figures["euroc_v101_micro"] = euroc_drift(euroc, engines)

    plot_path = out_dir / "slam_trajectories.png"
    plot(plot_path, panels)
    figures["plot"] = str(plot_path)
    figures["loadavg_end"] = os.getloadavg()
    print(json.dumps(figures))
    # Sanity: the oracle run (the SLAM's own logic) is accurate.
    assert figures["box_room"]["oracle"]["ate_percent_of_path"] < 1.0


def rectified_euroc(euroc: real_datasets.EurocStereo) -> tuple[StereoCamera, list[dict], np.ndarray]:
    """Rectify the EuRoC pairs (OpenCV stereoRectify, alpha 0): the stereo camera, the frames (stamps in seconds
    since the epoch, as the ground truth) and R_rect_cam0, the rotation of the rectified left camera."""
    c0, c1 = euroc.cam0, euroc.cam1
    T_c1_c0 = np.linalg.inv(c1.T_body_cam) @ c0.T_body_cam
    size = c0.resolution
    R1, R2, P1, P2, _, _, _ = cv2.stereoRectify(
        c0.K, c0.distortion, c1.K, c1.distortion, size, T_c1_c0[:3, :3], T_c1_c0[:3, 3], alpha=0
    )
    maps = [
        cv2.initUndistortRectifyMap(c.K, c.distortion, R, P, size, cv2.CV_32FC1)
        for c, R, P in ((c0, R1, P1), (c1, R2, P2))
    ]
    camera = StereoCamera.from_projections(P1, P2, size[0], size[1])
    frames = [
        {
            "stamp": float(euroc.timestamps_ns[t]) * 1e-9,
            "left": cv2.remap(left, *maps[0], cv2.INTER_LINEAR),
            "right": cv2.remap(right, *maps[1], cv2.INTER_LINEAR),
        }
        for t, (left, right) in enumerate(zip(euroc.left, euroc.right, strict=True))
    ]
    return camera, frames, R1


@pytest.mark.timeout(3600)
def test_slam_euroc_mh01(tmp_path):
    """A real stereo sequence of 200 frames with ground truth: ATE, RPE and speed for ORB and learned features."""
    torch.set_num_threads(2)
    try:
        euroc = real_datasets.load_euroc(name="euroc_mh01_stereo_0100_0299")
    except real_datasets.DatasetMissing as err:
        pytest.skip(f"EuRoC MH_01 is not staged: {err}")
    out_dir = output_dir(tmp_path)
    engines = descriptor_engines()
    camera, frames, R_rect_cam0 = rectified_euroc(euroc)
    # Ground truth of the rectified left camera: T_world_rect = T_world_cam0 @ T_cam0_rect.
    T_cam0_rect = np.eye(4)
    T_cam0_rect[:3, :3] = R_rect_cam0.T
    reference = Trajectory(euroc.groundtruth.timestamps, euroc.groundtruth.poses @ T_cam0_rect)
    load_start = os.getloadavg()
    runs = {"orb": run(camera, "orb", frames, "orb")}
    for name, (engine, note) in engines.items():
        runs[name] = run(camera, "learned", frames, note, rgb_descriptor_fn(engine))
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "sequence": "EuRoC MH_01 frames 100-299",
        "learned_models": {k: v[1] for k, v in engines.items()},
        "frames": len(frames),
        "path_m": round(reference.path_length(), 2),
        "camera": {"fx": round(camera.fx, 2), "baseline_m": round(camera.baseline, 4)},
        **{name: scores(r, reference, with_evo=True) for name, r in runs.items()},
    }
    plot_path = out_dir / "slam_euroc_mh01.png"
    trajectories = {k: v["trajectory"] for k, v in runs.items()}
    panels = [("EuRoC MH_01 100-299", reference, trajectories), ("ORB only", reference, {"orb": trajectories["orb"]})]
    plot(plot_path, panels, up_axis="z")
    figures["plot"] = str(plot_path)
    print(json.dumps(figures))
    assert figures["orb"]["ate_rmse_m"] is not None


def euroc_drift(euroc: real_datasets.EurocStereo, engines: dict[str, tuple[DescriptorEngine, str]]) -> dict:
    """Run both feature types on the rectified EuRoC pairs and report the camera's drift (the rig stands still)."""
    camera, frames, _ = rectified_euroc(euroc)
    gt = euroc.groundtruth.positions
    out = {
        "frames": len(frames),
        "gt_motion_m": round(float(np.linalg.norm(gt[-1] - gt[0])), 4),
        "baseline_m": round(camera.baseline, 4),
    }
    runs = {"orb": run(camera, "orb", frames, "orb")}
    for name, (engine, note) in engines.items():
        runs[name] = run(camera, "learned", frames, note, rgb_descriptor_fn(engine))
    for name, r in runs.items():
        p = r["trajectory"].positions
        out[name] = {
            "drift_m": round(float(np.linalg.norm(p[-1] - p[0])), 4),
            "max_excursion_m": round(float(np.linalg.norm(p - p[0], axis=1).max()), 4),
            "tracking_ms_per_frame": round(r["tracking_ms"], 1),
            "lost": r["lost"],
            "mean_tracked": round(r["mean_tracked"], 1),
        }
    return out


def gtsam_pose_only(
    camera: StereoCamera, T_cam_world: np.ndarray, points: np.ndarray, measurements: np.ndarray
) -> np.ndarray:
    """The pose-only problem on GTSAM: the points are variables held by tight priors (GTSAM's Python API has no
    stereo factor with a fixed point), one robust LM solve; returns T_cam_world."""
    from dense_descriptors_ros.slam.gtsam_support import require_gtsam, stereo_calibration

    gtsam = require_gtsam()
    X, L = gtsam.symbol_shorthand.X, gtsam.symbol_shorthand.L
    graph, values = gtsam.NonlinearFactorGraph(), gtsam.Values()
    noise = gtsam.noiseModel.Robust.Create(
        gtsam.noiseModel.mEstimator.Huber.Create(np.sqrt(7.815)), gtsam.noiseModel.Isotropic.Sigma(3, 1.0)
    )
    held = gtsam.noiseModel.Isotropic.Sigma(3, 1e-6)
    K = stereo_calibration(camera)
    values.insert(X(0), gtsam.Pose3(np.linalg.inv(T_cam_world)))
    for j, (p, (u, v, ur)) in enumerate(zip(points, measurements, strict=True)):
        values.insert(L(j), p)
        graph.add(gtsam.PriorFactorPoint3(L(j), p, held))
        graph.add(gtsam.GenericStereoFactor3D(gtsam.StereoPoint2(u, ur, v), noise, X(0), L(j), K))
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, gtsam.LevenbergMarquardtParams()).optimize()
    return np.linalg.inv(result.atPose3(X(0)).matrix())


def test_pose_only_backends():
    """Tracking's pose-only refinement (numpy Gauss-Newton, 4 passes with outlier re-classification) next to the
    same problem on GTSAM, on a EuRoC-sized frame (500 stereo observations, 5 % outliers)."""
    from dense_descriptors_ros.geometry.se3 import se3_exp, transform_points
    from dense_descriptors_ros.slam.pose_optimisation import optimize_pose

    camera = StereoCamera(436.0, 436.0, 376.0, 240.0, 0.11, 752, 480)
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(-3, 3, 500), rng.uniform(-2, 2, 500), rng.uniform(2, 8, 500)], 1)
    truth = np.eye(4)
    measurements = camera.project(transform_points(truth, points)) + rng.normal(0, 0.5, (500, 3))
    measurements[::20, :2] += 30.0
    start = se3_exp(np.array([0.03, -0.02, 0.05, 0.01, -0.01, 0.005])) @ truth
    timings = {}
    for name, solve in (
        (
            "numpy_gauss_newton",
            lambda: optimize_pose(camera, start, points, measurements, np.ones(500, bool)).T_cam_world,
        ),
        ("gtsam_levenberg_marquardt", lambda: gtsam_pose_only(camera, start, points, measurements)),
    ):
        ms = []
        for _ in range(10):
            t0 = time.perf_counter()
            T = solve()
            ms.append(1e3 * (time.perf_counter() - t0))
        timings[name] = {
            "median_ms": round(float(np.median(ms)), 2),
            "error_m": round(float(np.linalg.norm(T[:3, 3])), 4),
        }
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "pose_only_500_observations": timings}))
