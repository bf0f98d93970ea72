"""The ``lmo`` suite on a BOP scene folder the test makes: a textured box turning in front of the camera (and a
second box that models_info.json calls symmetric). Its correspondences land where the mesh says, its pairs fall
in their viewpoint bins, symmetric objects stay out, and the training folders it writes give the same labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dense_descriptors_ros.evaluation.baselines import make_baseline
from dense_descriptors_ros.evaluation.real_datasets import LMO_FOLDER, load_lmo_scene
from dense_descriptors_ros.evaluation.report import Report
from dense_descriptors_ros.evaluation.suites import lmo
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.learning.geometry_labels import load_frame_geometry
from dense_descriptors_ros.synthetic.dataset_folders import write_png
from dense_descriptors_ros.synthetic.gl_rasterizer import MeshRasterizer, renderer_available
from dense_descriptors_ros.synthetic.render_assets import make_object, pose_matrix

_AVAILABLE, _REASON = renderer_available()
pytestmark = pytest.mark.skipif(not _AVAILABLE, reason=f"headless OpenGL renderer unavailable: {_REASON}")

W, H, FRAMES, STEP_DEG = 160, 120, 8, 6.0
K = np.array([[150.0, 0.0, 79.5], [0.0, 150.0, 59.5], [0.0, 0.0, 1.0]])


def box_pose(frame: int, x: float) -> np.ndarray:
    """The box at (x, 0, 0.6) m, turned about its vertical axis by 20 deg + STEP_DEG per frame."""
    return pose_matrix((10.0, 20.0 + STEP_DEG * frame, 0.0), (x, 0.0, 0.6))


def write_ascii_ply(path: Path, vertices: np.ndarray) -> None:
    """A triangle soup (3k vertices, triangle n = vertices 3n..3n+2) as an ASCII PLY."""
    header = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}"]
    header += [f"property float {axis}" for axis in "xyz"]
    header += [f"element face {len(vertices) // 3}", "property list uchar int vertex_indices", "end_header"]
    rows = [" ".join(f"{c:.6f}" for c in v) for v in vertices]
    rows += [f"3 {3 * n} {3 * n + 1} {3 * n + 2}" for n in range(len(vertices) // 3)]
    path.write_text("\n".join(header + rows) + "\n")


@pytest.fixture(scope="module")
def bop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BOP-layout scene: object 1 (a box, left) and object 10 (a box BOP calls symmetric, right), 8 frames."""
    root = tmp_path_factory.mktemp("data")
    base = root / LMO_FOLDER / "lmo"
    scene = base / "test" / "000002"
    (scene / "rgb").mkdir(parents=True)
    (base / "models_eval").mkdir(parents=True)
    box = make_object("box")
    soup = box.mesh.positions.astype(np.float64) * 1000  # BOP models are in millimetres
    for obj in (1, 10):
        write_ascii_ply(base / "models_eval" / f"obj_{obj:06d}.ply", soup)
    info = {"1": {"diameter": 200.0}, "10": {"diameter": 200.0, "symmetries_discrete": [list(np.eye(4).ravel())]}}
    (base / "models_eval" / "models_info.json").write_text(json.dumps(info))
    gt, gt_info, cameras = {}, {}, {}
    with MeshRasterizer(W, H) as raster:
        handle = raster.add_model(box)
        for frame in range(FRAMES):
            poses = {1: box_pose(frame, -0.09), 10: box_pose(frame, 0.11)}
            view = raster.render(
                K, [(handle, poses[1]), (handle, poses[10])], background=np.full((H, W, 3), 90, np.uint8)
            )
            write_png(scene / "rgb" / f"{frame:06d}.png", view.rgb)
            gt[str(frame)] = [
                {"obj_id": obj, "cam_R_m2c": T[:3, :3].ravel().tolist(), "cam_t_m2c": (T[:3, 3] * 1000).tolist()}
                for obj, T in poses.items()
            ]
            gt_info[str(frame)] = [{"visib_fract": 1.0}, {"visib_fract": 1.0}]
            cameras[str(frame)] = {"cam_K": K.ravel().tolist(), "depth_scale": 1.0}
    for name, content in (("gt", gt), ("gt_info", gt_info), ("camera", cameras)):
        (scene / f"scene_{name}.json").write_text(json.dumps(content))
    return root


def test_correspondences_land_where_the_mesh_says(bop_root: Path) -> None:
    scene = load_lmo_scene(bop_root)
    assert scene.frames == list(range(FRAMES)) and scene.symmetric == {10}
    pairs = lmo.object_view_pairs(scene, [4, 5, 7])
    assert [(p.a, p.b, p.obj_id) for p in pairs] == [(4, 5, 1), (4, 7, 1), (5, 7, 1)]  # object 10 left out
    assert [p.angle_deg for p in pairs] == pytest.approx([6.0, 18.0, 12.0], abs=1e-6)
    views = lmo.render_views(scene, [4, 7])
    pts_a, pts_b = lmo.object_correspondences(scene, views, pairs[1])
    assert len(pts_a) > 500
    # Independent of the depth: points on the mesh's triangles that face both cameras, projected with both poses.
    tri = make_object("box").mesh.positions.astype(np.float64).reshape(-1, 3, 3)
    weights = np.random.default_rng(0).dirichlet(np.ones(3), size=200)
    surface = np.einsum("pk,tkc->tpc", weights, tri)  # (triangles, 200, 3)
    normals = np.repeat(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), 200, axis=0)
    surface = surface.reshape(-1, 3)
    projected, facing = [], np.ones(len(surface), bool)
    for frame in (4, 7):
        T = box_pose(frame, -0.09)
        camera = surface @ T[:3, :3].T + T[:3, 3]
        cosine = np.einsum("ij,ij->i", normals @ T[:3, :3].T, -camera)
        facing &= cosine > 0.3 * np.linalg.norm(normals, axis=1) * np.linalg.norm(camera, axis=1)
        projected.append(camera[:, :2] / camera[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2])
    distance = np.linalg.norm(pts_a[None] - projected[0][facing][:, None], axis=2)  # (surface points, pixels)
    nearest = distance.argmin(1)
    close = distance[np.arange(len(nearest)), nearest] < 0.25
    # Within a quarter pixel in view a; a turn of 18 deg keeps that under 0.5 px in view b.
    errors = np.linalg.norm(pts_b[nearest[close]] - projected[1][facing][close], axis=1)
    assert close.sum() >= 30 and errors.max() < 0.5


def test_the_suite_scores_methods_per_viewpoint_bin(bop_root: Path, tmp_path: Path) -> None:
    settings = SuiteSettings(data_dir=str(bop_root), pairs=2, points=200, max_side=0)
    report = Report(tmp_path / "report", "lmo")
    results = lmo.evaluate_lmo([make_baseline("raw_colour")], settings, report)
    # Test frames 4-7: five triples turned 6 or 12 deg (two drawn), one turned 18 deg.
    assert {label: figures["raw_colour"]["points"] for label, figures in results.items()} == {
        "0-15 deg": 400,
        "15-30 deg": 200,
    }
    for figures in results.values():
        assert 0.0 <= figures["raw_colour"]["pck@10"] <= 1.0 and figures["raw_colour"]["median_error_px"] >= 0.0
    text = report.write().read_text()
    assert "LM-O 0-15 deg" in text and "objects [1]" in text


def test_training_folders_carry_the_same_correspondences(bop_root: Path, tmp_path: Path) -> None:
    folders = lmo.write_lmo_training_folders(tmp_path / "lmo_train", bop_root)
    assert [f.name for f in folders] == ["obj_01"]  # the symmetric object gets no folder
    assert len(list((folders[0] / "rgb").glob("*.png"))) == 4 == len(list((folders[0] / "mask").glob("*.png")))
    geometry = load_frame_geometry(folders[0] / "rgb")
    label = geometry.label(0, 2, (H, W))
    scene = load_lmo_scene(bop_root)
    pts_a, pts_b = lmo.object_correspondences(scene, lmo.render_views(scene, [0, 2]), lmo.ObjectViewPair(0, 2, 1, 12.0))
    rows, cols = pts_a[:, 1].astype(int), pts_a[:, 0].astype(int)
    assert label.valid[rows, cols].all() and label.valid.sum() == len(pts_a)
    np.testing.assert_allclose(pts_a + label.flow[rows, cols], pts_b, atol=1e-3)
