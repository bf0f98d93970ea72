"""`dense-descriptors demo`: the whole loop a user lives, in one command: record -> train -> track -> look.

1. render  a handheld-style video of an object (ground truth kept for the report);
2. record  it: frames are played as sensor_msgs/Image into the real recorder_node (rclpy, in this process) -> rosbag2;
3. train   a descriptor network self-supervised from that bag (optical-flow labels, no human labels);
4. track   points on the held-out second half with the real tracker_node (in this process);
5. report  what came out: annotated video, tracks CSV, descriptor colouring, an evaluation report with plots
           (trained vs the out-of-the-box model vs untrained vs dense SIFT on ground truth) and a rosbag2 of the
           outputs for Foxglove / rviz.

Long file: one function per stage plus the report that compares them; they share the demo's size and paths.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from dense_descriptors_ros.io.atomic_files import atomic_path, atomic_write_text

log = logging.getLogger(__name__)
RECIPE = Path(__file__).resolve().parents[2] / "training" / "demo.yaml"


@dataclass
class DemoSize:
    """How big the demo is: the full demo (README) or the reduced one CI runs."""

    frames: int
    epochs: int
    steps_per_epoch: int
    query_points: int


SIZES = {
    "full": DemoSize(frames=120, epochs=2, steps_per_epoch=60, query_points=24),
    "ci": DemoSize(frames=40, epochs=1, steps_per_epoch=15, query_points=12),
}
# Rendered at the recipe's training size, so training, tracking and evaluation all see the same pixels.
WIDTH, HEIGHT = 160, 120


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--size", default="full", choices=sorted(SIZES), help="full demo, or the reduced CI one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rendered video and of training")
    parser.add_argument("--object", default="drill", help="rendered object (drill: weakly textured; hulk: textured)")


def run_demo(args: argparse.Namespace) -> int:
    # Keep the demo's DDS traffic on this machine unless the user configured discovery.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    size = SIZES[args.size]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)
        print(f"== {name} done ({timings[name]} s)")

    seq = render_video(out / "video", size.frames, args.seed, args.object)
    stage("render")
    bag = record_video(seq.rgb, out / "recording")
    stage("record")
    summary = train_from_bag(bag, out / "training", size, args.seed)
    stage("train")
    model_dir = Path(summary["checkpoint"])
    held_out = held_out_frames(seq)
    tracks = track_held_out(seq, held_out, model_dir, out / "tracking", size.query_points)
    stage("track")
    report = evaluate_held_out(seq, held_out, model_dir, tracks, summary, out / "report")
    stage("evaluate")
    write_outputs_bag(out / "outputs_bag", tracks)
    result_png = write_result_picture(out / "result.png", seq, held_out, tracks, model_dir)
    stage("outputs")
    report["timings_s"] = timings
    atomic_write_text(out / "report" / "figures.json", json.dumps(report, indent=2))
    print_summary(out, report, result_png)
    return 0 if report["trained_beats_untrained"] else 1


# --- 1. render ---------------------------------------------------------------------------------------------------
def render_video(folder: Path, frames: int, seed: int, obj: str) -> Any:
    from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset

    print(f"== rendering a {frames}-frame video of a {obj} with ground truth into {folder}")
    return write_object_dataset(
        folder,
        seed=seed,
        n_frames=frames,
        object=obj,
        occlusion_passes=1,
        occlusion_frames=max(4, frames // 8),
        width=WIDTH,
        height=HEIGHT,
    )


# --- 2. record ---------------------------------------------------------------------------------------------------
def record_video(frames: np.ndarray, folder: Path) -> Path:
    """Play ``frames`` as Image messages (30 Hz stamps) into the real recorder_node; returns the bag it wrote."""
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dense_descriptors_ros.io.image_conversion import numpy_to_image
    from dense_descriptors_ros.nodes.in_process_graph import InProcessGraph, wait_for
    from dense_descriptors_ros.nodes.recorder_node import RecorderNode

    print(f"== recording {len(frames)} frames through recorder_node into {folder}")
    params = {
        "output_dir": str(folder),
        "bag_prefix": "demo",
        "image_qos": "reliable",
        "max_rate": 0.0,
        "min_motion": 0.0,
        "blur_ratio": 0.0,
        "queue_depth": 100,
    }
    with InProcessGraph() as graph:
        node = graph.add(
            RecorderNode(context=graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        )
        node.trigger_configure()
        node.trigger_activate()
        if node.recorder is None or not node.recorder.recording:
            raise ValueError("recorder_node did not start recording; see its log above")
        publisher = graph.node("handheld_camera").create_publisher(
            Image, "image", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        )
        if not wait_for(lambda: publisher.get_subscription_count() > 0, timeout=20):
            raise RuntimeError("recorder_node did not subscribe to image within 20 s")
        for index, frame in enumerate(tqdm(frames, desc="publish", unit="frame")):
            msg = numpy_to_image(frame, "rgb8")
            stamp = 1_700_000_000 + index / 30.0
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round((stamp % 1) * 1e9)
            msg.header.frame_id = "camera_optical"
            publisher.publish(msg)
            time.sleep(0.01)
        wait_for(lambda: node.recorder.counts.received >= len(frames), timeout=60)
        bags = node.recorder.stop()
    if not bags:
        raise RuntimeError("recorder_node wrote no bag")
    return bags[0]


# --- 3. train ----------------------------------------------------------------------------------------------------
def train_from_bag(bag: Path, folder: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    from dense_descriptors_ros.config import from_mapping
    from dense_descriptors_ros.learning.recipe import TrainConfig, build_datasets
    from dense_descriptors_ros.learning.trainer import Trainer

    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update({"epochs": size.epochs, "steps_per_epoch": size.steps_per_epoch, "seed": seed})
    config = from_mapping(TrainConfig, recipe)
    print(
        f"== training {config.model.backbone} D={config.model.descriptor_dim} from {bag} "
        f"({config.epochs} epochs x {config.steps_per_epoch} steps, recipe {RECIPE.name})"
    )
    train_set, val_set = build_datasets(config, [bag], cache_dir=folder / "flow_cache")
    trainer = Trainer(config, train_set, val_set, folder, provenance={"data": str(bag), "demo": True})
    return trainer.fit()


# --- 4. track ----
def held_out_frames(seq: Any) -> list[int]:
    """The second half of the video (the half training did not see), starting where the object is well in view."""
    half = list(range(len(seq) // 2, len(seq)))
    areas = np.array([seq.masks[i].sum() for i in half[: max(1, len(half) // 3)]])
    return half[int(areas.argmax()) :]


def _query_points(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` points spread over the object mask (a grid over the mask, shrunk away from its border)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    ys, xs = np.nonzero(eroded if eroded.sum() >= count else mask)
    order = np.lexsort((xs, ys))
    pick = order[np.linspace(0, len(order) - 1, count).astype(int)]
    return np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)


@dataclass
class TrackingRun:
    frame_indices: list[int]
    ids: np.ndarray  # (N,)
    positions: np.ndarray  # (T, N, 2)
    visible: np.ndarray  # (T, N)
    scores: np.ndarray  # (T, N)
    annotated: list[np.ndarray]  # RGB
    messages: list[tuple[float, str, Any]]  # (stamp, topic, message) for the outputs bag


def track_held_out(seq: Any, held_out: list[int], model_dir: Path, folder: Path, count: int) -> TrackingRun:
    """Run the real tracker_node on the held-out frames; write the annotated video and tracks.csv."""
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2
    from visualization_msgs.msg import MarkerArray

    from dense_descriptors_ros.io.image_conversion import image_to_numpy, numpy_to_image
    from dense_descriptors_ros.nodes.in_process_graph import InProcessGraph, wait_for
    from dense_descriptors_ros.nodes.messages.pointcloud import pointcloud2_to_array
    from dense_descriptors_ros.nodes.tracker_node import TrackerNode

    folder.mkdir(parents=True, exist_ok=True)
    queries = _query_points(seq.masks[held_out[0]], count)
    print(f"== tracking {len(queries)} points over {len(held_out)} held-out frames with tracker_node")
    params = {
        "model_dir": str(model_dir),
        "input": "image",
        "image_qos": "reliable",
        "stats_period": 0.0,
        "query_points": queries.ravel().tolist(),
        "max_side": 0,
    }
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    with InProcessGraph() as graph:
        node = graph.add(
            TrackerNode(context=graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        )
        node.trigger_configure()
        node.trigger_activate()
        if node.engine is None:
            raise ValueError(f"tracker_node did not activate with {model_dir}; see its log above")
        clouds = graph.collector(PointCloud2, "tracks")
        images = graph.collector(Image, "tracks/image")
        markers = graph.collector(MarkerArray, "tracks/markers")
        publisher = graph.node("held_out_camera").create_publisher(Image, "image", reliable)
        if not wait_for(lambda: publisher.get_subscription_count() > 0, timeout=20):
            raise RuntimeError("tracker_node did not subscribe to image within 20 s")
        for k, index in enumerate(tqdm(held_out, desc="track", unit="frame")):
            msg = numpy_to_image(seq.rgb[index], "rgb8")
            msg.header.stamp.sec = k
            msg.header.frame_id = "camera_optical"
            publisher.publish(msg)
            # One frame at a time: the node keeps only the newest frame, and the demo wants every one.
            if not wait_for(lambda k=k: any(c.header.stamp.sec == k for c in clouds), timeout=120):
                raise RuntimeError(f"no tracks from tracker_node for held-out frame {k}")
        wait_for(lambda: len(images) >= len(held_out), timeout=10)
    by_stamp = {c.header.stamp.sec: pointcloud2_to_array(c) for c in clouds}
    points = [by_stamp[k] for k in range(len(held_out))]
    annotated = {m.header.stamp.sec: image_to_numpy(m) for m in images}
    run = TrackingRun(
        frame_indices=held_out,
        ids=points[0]["id"].astype(int),
        positions=np.stack([np.stack([p["x"], p["y"]], axis=1) for p in points]),
        visible=np.stack([p["visible"].astype(bool) for p in points]),
        scores=np.stack([p["score"] for p in points]),
        annotated=[annotated[k] for k in sorted(annotated)],
        messages=[(float(c.header.stamp.sec), "/tracks", c) for c in clouds]
        + [(float(m.header.stamp.sec), "/tracks/image", m) for m in images]
        + [(float(m.markers[0].header.stamp.sec), "/tracks/markers", m) for m in markers if m.markers],
    )
    with atomic_path(folder / "tracks.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "id", "x", "y", "visible", "score"])
        for t, index in enumerate(held_out):
            for n, track_id in enumerate(run.ids):
                x, y = run.positions[t, n]
                writer.writerow(
                    [index, track_id, f"{x:.2f}", f"{y:.2f}", int(run.visible[t, n]), f"{run.scores[t, n]:.4f}"]
                )
    write_video(folder / "tracked_points.mp4", run.annotated)
    return run


def write_video(path: Path, frames_rgb: list[np.ndarray], fps: float = 15.0) -> None:
    h, w = frames_rgb[0].shape[:2]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()


# --- 5. evaluate and report --------------------------------------------------------------------------------------
def evaluate_held_out(
    seq: Any, held_out: list[int], model_dir: Path, run: TrackingRun, summary: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Ground-truth figures on the held-out frames: trained vs out-of-the-box vs untrained vs dense SIFT, and
    tracking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dense_descriptors_ros.evaluation.baselines import make_baseline
    from dense_descriptors_ros.metrics.error_percentile import error_percentiles
    from dense_descriptors_ros.metrics.point_tracking import tapvid_metrics
    from dense_descriptors_ros.model.checkpoint import load_checkpoint
    from dense_descriptors_ros.model.engine import DescriptorEngine
    from dense_descriptors_ros.model.network import DescriptorNet
    from dense_descriptors_ros.model.pretrained import pretrained_network
    from dense_descriptors_ros.synthetic.object_renderer import correspondences, point_tracks

    folder.mkdir(parents=True, exist_ok=True)
    trained = DescriptorEngine.from_checkpoint(model_dir, device="auto")
    untrained_net = DescriptorNet(replace(load_checkpoint(model_dir).config, pretrained=False))
    untrained = DescriptorEngine(untrained_net, device="auto")
    methods = {
        "trained": trained.compute,
        "out-of-the-box": DescriptorEngine(pretrained_network(), device="auto").compute,
        "untrained": untrained.compute,
        "dense SIFT": make_baseline("dense_sift").compute,
    }
    rng = np.random.default_rng(0)
    errors: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    pairs = [(i, i + 2) for i in held_out[:-2:3]]
    for i, j in tqdm(pairs, desc="evaluate", unit="pair"):
        ys, xs = np.nonzero(seq.masks[i])
        pick = rng.choice(len(xs), size=min(300, len(xs)), replace=False)
        pts_i = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64)
        pts_j, visible = correspondences(seq, i, j, pts_i)
        if visible.sum() < 10:
            continue
        for name, describe in methods.items():
            errors[name].append(
                error_percentiles(describe(seq.rgb[i]), describe(seq.rgb[j]), pts_i[visible], pts_j[visible])
            )
    flat = {name: np.concatenate(v) if v else np.array([np.nan]) for name, v in errors.items()}
    figures: dict[str, Any] = {name: round(float(np.nanmean(v)), 3) for name, v in flat.items()}
    figures = {f"mean_error_percentile_{_key(k)}": v for k, v in figures.items()}

    queries = run.positions[0]
    truth, truth_visible = point_tracks(seq, queries, ref=held_out[0])
    truth, truth_visible = truth[held_out], truth_visible[held_out]
    tracking = tapvid_metrics(
        truth.transpose(1, 0, 2),
        ~truth_visible.T,
        run.positions.transpose(1, 0, 2),
        ~run.visible.T,
        np.zeros(len(queries), int),
    )
    tracking = {k: v for k, v in tracking.items() if k in ("delta_avg", "occlusion_accuracy", "average_jaccard")}
    figures.update({f"tracking_{k}": round(float(v), 3) for k, v in tracking.items()})
    figures["training"] = {k: v for k, v in summary.items() if k != "checkpoint"}
    figures["held_out_frames"] = len(held_out)
    figures["trained_beats_untrained"] = bool(
        figures["mean_error_percentile_trained"] < figures["mean_error_percentile_untrained"]
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in flat.items():
        values = np.sort(values[np.isfinite(values)])
        axes[0].plot(values, np.linspace(0, 1, len(values)), label=f"{name} (mean {np.mean(values):.2f})")
    axes[0].set(
        xlabel="error percentile of the true match (%)",
        ylabel="fraction of pixels",
        xscale="symlog",
        title="held-out pairs: cumulative error (papers/000 Fig. 7)",
    )
    axes[0].legend()
    distance = np.linalg.norm(run.positions - truth, axis=-1)
    distance[~truth_visible] = np.nan
    axes[1].plot(np.nanmedian(distance, axis=1), label="median")
    axes[1].plot(np.nanpercentile(distance, 90, axis=1), label="90th percentile")
    axes[1].set(
        xlabel="held-out frame",
        ylabel="pixel error to ground truth",
        yscale="symlog",
        title="tracker_node on held-out frames",
    )
    axes[1].legend()
    fig.tight_layout()
    with atomic_path(folder / "evaluation.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)

    lines = [
        "# Demo evaluation (held-out second half of the video, rendered ground truth)",
        "",
        "| descriptor | mean error percentile (%) |",
        "|---|---|",
    ]
    for name in methods:
        key = "mean_error_percentile_" + _key(name)
        lines.append(f"| {name} | {figures[key]:.2f} |")
    lines += ["", "| tracking metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in tracking.items()]
    lines += ["", "![evaluation](evaluation.png)", ""]
    atomic_write_text(folder / "report.md", "\n".join(lines))
    return figures


def _key(method: str) -> str:
    return method.replace(" ", "_").replace("-", "_")


# --- outputs -----------------------------------------------------------------------------------------------------
def write_outputs_bag(folder: Path, run: TrackingRun) -> Path:
    """The node outputs (tracks, markers, annotated images) as an mcap rosbag2 for Foxglove or `ros2 bag play`."""
    import shutil

    from rclpy.serialization import serialize_message

    from dense_descriptors_ros.io.bag_writer import ImageBagWriter

    shutil.rmtree(folder, ignore_errors=True)
    with ImageBagWriter(folder, topic="/tracks/image") as writer:
        writer.add_topic("/tracks", "sensor_msgs/msg/PointCloud2")
        writer.add_topic("/tracks/markers", "visualization_msgs/msg/MarkerArray")
        for stamp, topic, msg in sorted(run.messages, key=lambda m: m[0]):
            writer.write_raw(topic, int(1e9 * (1_700_000_000 + stamp / 15.0)), serialize_message(msg))
    return folder


def write_result_picture(path: Path, seq: Any, held_out: list[int], run: TrackingRun, model_dir: Path) -> Path:
    """One PNG: annotated held-out frames (top) and their descriptor colouring (bottom)."""
    from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
    from dense_descriptors_ros.model.engine import DescriptorEngine

    engine = DescriptorEngine.from_checkpoint(model_dir, device="auto")
    colorizer = DescriptorColorizer()
    picks = np.linspace(0, len(held_out) - 1, 4).astype(int)
    top = np.hstack([run.annotated[k] for k in picks])
    bottom = np.hstack([colorizer(engine.compute(seq.rgb[held_out[k]])) for k in picks])
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(np.vstack([top, bottom]), cv2.COLOR_RGB2BGR))
    return path


def print_summary(out: Path, report: dict[str, Any], result_png: Path) -> None:
    print("\n== demo finished in {:.0f} s".format(sum(report["timings_s"].values())))
    print(
        f"  held-out mean error percentile: trained {report['mean_error_percentile_trained']:.2f} %, "
        f"out-of-the-box {report['mean_error_percentile_out_of_the_box']:.2f} %, "
        f"untrained {report['mean_error_percentile_untrained']:.2f} %, "
        f"dense SIFT {report['mean_error_percentile_dense_SIFT']:.2f} %"
    )
    print(f"  tracking delta_avg {report.get('tracking_delta_avg', float('nan')):.3f}")
    for label, path in [
        ("result picture", result_png),
        ("rendered video + ground truth", out / "video"),
        ("recorded rosbag2 (training input)", out / "recording"),
        ("trained checkpoint", out / "training" / "best"),
        ("loss curve", out / "training" / "loss_curve.png"),
        ("annotated video of tracked points", out / "tracking" / "tracked_points.mp4"),
        ("tracks (CSV)", out / "tracking" / "tracks.csv"),
        ("evaluation report", out / "report" / "report.md"),
        ("outputs rosbag2 (Foxglove / ros2 bag play)", out / "outputs_bag"),
    ]:
        print(f"  {label + ':':45s} {path}")
