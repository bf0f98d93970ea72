"""``lmo`` suite: wide-baseline correspondences on real texture-less objects (BOP Linemod-Occluded, scene 2).

The staged scene (shared/data/README.md, section 9) holds 100 views of a cluttered desk taken with a hand-held
Kinect and the 6D pose of 8 texture-less objects in each, but no depth and no masks. The suite renders each view's
depth and object masks from the meshes and poses, and maps the pixels of an object in view a into view b with that
object's own two poses (geometry/reprojection.py: a point counts only where view b sees it, by the rendered depth).
Occluders that are not annotated (the bench vise in the middle, the clutter) are not in the render, so only objects
with at least ``MIN_VISIBLE`` of their pixels visible in both views (BOP's visib_fract) take part, and not the two
that BOP lists as symmetric (egg box, glue: their annotated poses may flip between equivalent ones). The annotated
poses are not exact: between the same two views, the objects' relative rotations differ by several degrees (a static
scene would give one camera motion), so expect ground-truth errors of a few pixels and compare methods at 5-10 px.

Test pairs come from the second half of the frames (the first half is what ``dense-descriptors render lmo`` writes
for training), one (view a, view b, object) triple each, grouped by how far the view of the object turned between
the two images (the angle of its relative rotation, ``ANGLE_BINS``). Every method matches the same points by
whole-image nearest neighbour (figures of suites/correspondences.py, pixel errors in pixels of the 640x480 frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.evaluation import real_datasets
from dense_descriptors_ros.evaluation.baselines import DescriptorMethod
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites.correspondences import (
    correspondence_figures,
    report_correspondences,
    subsample,
)
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.geometry.reprojection import reproject_pixels
from dense_descriptors_ros.io.ply_mesh import read_ply_mesh
from dense_descriptors_ros.learning.geometry_labels import save_frame_geometry
from dense_descriptors_ros.synthetic.dataset_folders import write_png
from dense_descriptors_ros.synthetic.gl_rasterizer import MeshRasterizer, RenderedView
from dense_descriptors_ros.synthetic.render_assets import ObjectModel, triangle_mesh

MIN_VISIBLE = 0.9
ANGLE_BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 60.0), (60.0, 90.0))  # degrees the object turned between the two views


@dataclass
class ObjectViewPair:
    """Object ``obj_id`` seen in frames ``a`` and ``b``, turned by ``angle_deg`` between them."""

    a: int
    b: int
    obj_id: int
    angle_deg: float


def split_frames(scene: real_datasets.BopScene) -> tuple[list[int], list[int]]:
    """(training frames, test frames): the first and the second half of the scene's frames in id order."""
    half = len(scene.frames) // 2
    return scene.frames[:half], scene.frames[half:]


def render_views(scene: real_datasets.BopScene, frames: list[int]) -> dict[int, RenderedView]:
    """Depth (metres) and instance ids (k + 1 for ``scene.instances[frame][k]``) of each frame, from the meshes."""
    height, width = scene.rgb(frames[0]).shape[:2]
    views = {}
    with MeshRasterizer(width, height, supersample=1) as raster:
        handles = {}
        for obj, path in scene.model_files.items():
            vertices, faces = read_ply_mesh(path)
            grey = np.full((2, 2, 3), 160, np.uint8)
            handles[obj] = raster.add_model(
                ObjectModel(f"obj_{obj}", triangle_mesh(vertices / 1000, faces), grey, "weak")
            )
        for frame in tqdm(frames, desc="lmo: rendering depth from the meshes", unit="view"):
            views[frame] = raster.render(scene.K, [(handles[i.obj_id], i.T_cam_obj) for i in scene.instances[frame]])
    return views


def _instance(scene: real_datasets.BopScene, frame: int, obj_id: int) -> tuple[int, real_datasets.BopInstance]:
    (found,) = [(k, i) for k, i in enumerate(scene.instances[frame]) if i.obj_id == obj_id]
    return found


def object_view_pairs(scene: real_datasets.BopScene, frames: list[int]) -> list[ObjectViewPair]:
    """Every (a < b, object) with the object at least MIN_VISIBLE visible in both frames, symmetric objects left out."""
    pairs = []
    for n, a in enumerate(frames):
        for b in frames[n + 1 :]:
            seen_b = {i.obj_id: i for i in scene.instances[b] if i.visible_fraction >= MIN_VISIBLE}
            for inst in scene.instances[a]:
                if inst.visible_fraction < MIN_VISIBLE or inst.obj_id not in seen_b or inst.obj_id in scene.symmetric:
                    continue
                R = seen_b[inst.obj_id].T_cam_obj[:3, :3] @ inst.T_cam_obj[:3, :3].T
                angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
                pairs.append(ObjectViewPair(a, b, inst.obj_id, float(angle)))
    return pairs


def object_correspondences(
    scene: real_datasets.BopScene, views: dict[int, RenderedView], pair: ObjectViewPair
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (x, y) of the object in frame a and where they are in frame b, for the points frame b sees."""
    k_a, inst_a = _instance(scene, pair.a, pair.obj_id)
    k_b, inst_b = _instance(scene, pair.b, pair.obj_id)
    view_a, view_b = views[pair.a], views[pair.b]
    on_a, on_b = view_a.instance_ids == k_a + 1, view_b.instance_ids == k_b + 1
    rows, cols = np.nonzero(on_a)
    pts_a = np.column_stack([cols, rows]).astype(np.float64)
    T_b_a = inst_b.T_cam_obj @ np.linalg.inv(inst_a.T_cam_obj)
    pts_b, seen = reproject_pixels(pts_a, view_a.depth, view_b.depth, scene.K, T_b_a, on_a, on_b)
    return pts_a[seen], pts_b[seen]


def evaluate_lmo(methods: list[DescriptorMethod], settings: SuiteSettings, report: Report) -> dict[str, dict]:
    """Correspondence figures per viewpoint-change bin and method (see the module docstring)."""
    scene = real_datasets.load_lmo_scene(settings.data_dir)
    _, test_frames = split_frames(scene)
    candidates = object_view_pairs(scene, test_frames)
    rng = np.random.default_rng(settings.seed)
    chosen: dict[str, list[ObjectViewPair]] = {}
    for low, high in ANGLE_BINS:
        in_bin = [p for p in candidates if low <= p.angle_deg < high]
        picks = rng.choice(len(in_bin), min(settings.pairs, len(in_bin)), replace=False) if in_bin else []
        chosen[f"{low:.0f}-{high:.0f} deg"] = [in_bin[i] for i in sorted(picks)]
    frames = sorted({f for pairs in chosen.values() for p in pairs for f in (p.a, p.b)})
    views = render_views(scene, frames)
    images = {frame: scene.rgb(frame) for frame in frames}  # one array per frame: described once per method
    all_results: dict[str, dict] = {}
    for label, pairs in chosen.items():
        if not pairs:
            continue
        items = []
        for pair in pairs:
            pts_a, pts_b = subsample(*object_correspondences(scene, views, pair), settings.points, rng)
            if len(pts_a):  # a view can see the object yet none of the points the other view sees
                items.append((f"{pair.a}-{pair.b}/obj{pair.obj_id}", images[pair.a], images[pair.b], pts_a, pts_b))
        if not items:
            continue
        results, errors = {}, {}
        for method in tqdm(methods, desc=f"lmo {label}", unit="method"):
            results[method.name], errors[method.name] = correspondence_figures(method, items, settings)
        objects = sorted({p.obj_id for p in pairs})
        report_correspondences(
            report,
            f"LM-O {label}",
            results,
            errors,
            note=f"BOP LM-O scene 2, test frames {test_frames[0]}-{test_frames[-1]}: {len(items)} (view, view, object) "
            f"triples whose object turned {label} (objects {objects}), up to {settings.points} points each, "
            "ground truth from the object meshes and poses; whole-image nearest neighbour.",
        )
        all_results[label] = results
    return all_results


def write_lmo_training_folders(out: str | Path, root: str | Path | None = None) -> list[Path]:
    """One training folder per object (symmetric ones left out) from the scene's first half of frames, the views
    that see at least MIN_VISIBLE of it: ``rgb/`` (the frames), ``mask/`` (the object's rendered pixels) and
    ``geometry.npz`` (rendered depth, K, the object's pose as T_cam_ref, usable = the object's pixels) for
    ``train --set labels=geometry``: one clip per object, so its labels follow its own poses. Returns the folders."""
    scene = real_datasets.load_lmo_scene(root)
    train_frames, _ = split_frames(scene)
    views = render_views(scene, train_frames)
    images = {frame: scene.rgb(frame) for frame in train_frames}  # each frame goes to several objects' folders
    folders = []
    for obj in sorted(set(scene.model_files) - scene.symmetric):
        frames = [
            f
            for f in train_frames
            if any(i.obj_id == obj and i.visible_fraction >= MIN_VISIBLE for i in scene.instances[f])
        ]
        folder = Path(out) / f"obj_{obj:02d}"
        for part in ("rgb", "mask"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        depth, poses, usable = [], [], []
        for n, frame in enumerate(frames):
            k, inst = _instance(scene, frame, obj)
            on = views[frame].instance_ids == k + 1
            write_png(folder / "rgb" / f"{n:06d}.png", images[frame])
            write_png(folder / "mask" / f"{n:06d}.png", on.astype(np.uint8) * 255)
            depth.append(views[frame].depth)
            poses.append(inst.T_cam_obj)
            usable.append(on)
        save_frame_geometry(folder, np.stack(depth), scene.K, np.stack(poses), np.stack(usable))
        folders.append(folder)
    return folders
