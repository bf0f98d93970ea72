"""Labels from depth and poses (labels: geometry): exact reprojection, occlusion, the file formats, and training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dense_descriptors_ros.config import ConfigError, from_mapping
from dense_descriptors_ros.learning.dataset import load_clip
from dense_descriptors_ros.learning.geometry_labels import FrameGeometry, load_frame_geometry, save_frame_geometry
from dense_descriptors_ros.learning.recipe import TrainConfig, build_datasets
from dense_descriptors_ros.learning.trainer import Trainer
from dense_descriptors_ros.model.checkpoint import load_checkpoint

K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])  # 64x48 depth images


def _shifted(tx: float) -> np.ndarray:
    """Pose of a camera moved by tx metres along x, as camera-from-world."""
    T = np.eye(4)
    T[0, 3] = -tx
    return T


def test_labels_at_half_size_are_the_depth_pixels_flow_halved(tmp_path: Path) -> None:
    n = 3
    depth = np.full((n, 48, 64), 2.0, np.float32)
    poses = np.stack([_shifted(0.04 * k) for k in range(n)])  # 2 px per frame at the depth's size
    usable = np.ones(depth.shape, bool)
    usable[:, :, 60:] = False  # the last 4 depth columns: the last 2 training columns
    save_frame_geometry(tmp_path, depth, K, poses, usable)
    geometry = load_frame_geometry(tmp_path / "rgb")  # beside the frame folder
    np.testing.assert_array_equal(geometry.usable, usable)
    label = geometry.label(0, 2, (24, 32))
    assert label.flow.shape == (24, 32, 2) and label.valid.dtype == bool
    np.testing.assert_allclose(label.flow[label.valid], [[-2.0, 0.0]] * int(label.valid.sum()), atol=1e-6)
    assert not label.valid[:, 0].any() and label.valid[:, 2:30].all() and not label.valid[:, 30:].any()
    assert len(geometry.select([0, 2])) == 2
    with pytest.raises(ValueError, match="frame 5 is used"):
        geometry.select([0, 5])


def test_missing_or_incomplete_geometry_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "rgb").mkdir()
    with pytest.raises(ValueError, match="labels: geometry needs depth and poses; none found"):
        load_frame_geometry(tmp_path / "rgb")
    np.savez(tmp_path / "geometry.npz", depth=np.ones((2, 4, 4)), K=K)
    with pytest.raises(ValueError, match=r"missing \['T_cam_ref'\]"):
        load_frame_geometry(tmp_path / "rgb")
    with pytest.raises(ValueError, match="does not match depth"):
        save_frame_geometry(tmp_path, np.ones((2, 4, 4)), K, np.tile(np.eye(4), (2, 1, 1)), np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="T_cam_ref"):
        FrameGeometry(np.ones((2, 4, 4)), K, np.ones((3, 4, 4)), None, "test")
    with pytest.raises(ConfigError, match="labels"):
        from_mapping(TrainConfig, {"labels": "depth"})
    with pytest.raises(ConfigError, match="encoder_lr"):
        from_mapping(TrainConfig, {"optimizer": {"lr": 1e-3, "encoder_lr": 1e-6}})


@pytest.fixture(scope="module")
def rendered_drill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset
    from dense_descriptors_ros.synthetic.object_renderer import RendererUnavailable

    folder = tmp_path_factory.mktemp("geometry") / "drill"
    try:
        write_object_dataset(folder, 5, 12, progress=False, object="drill", width=128, height=96, occlusion_passes=0)
    except RendererUnavailable as exc:
        pytest.skip(f"no headless OpenGL renderer to draw the drill: {exc}")
    return folder


def test_labels_of_a_rendered_folder_are_the_renderers_correspondences(rendered_drill: Path) -> None:
    from dense_descriptors_ros.synthetic.dataset_folders import load_object_dataset
    from dense_descriptors_ros.synthetic.object_renderer import correspondences

    seq = load_object_dataset(rendered_drill)
    clip = load_clip(rendered_drill / "rgb", (96, 128), labels="geometry", stride=2)
    assert len(clip.frames) == 6 and len(clip.geometry) == 6
    with pytest.raises(ValueError, match="by order"):
        load_clip(rendered_drill / "rgb", (96, 128), labels="geometry", start_time=0.5)
    label = clip.geometry.label(0, 4, (96, 128))  # frames 0 and 8 of the video: 24 degrees of turn
    ys, xs = np.nonzero(label.valid)
    assert len(xs) > 500
    truth, visible = correspondences(seq, 0, 8, np.column_stack([xs, ys]).astype(float))
    assert visible.mean() > 0.95  # what the label keeps, the renderer sees (it also checks instance ids)
    error = np.linalg.norm(np.column_stack([xs, ys]) + label.flow[ys, xs] - truth, axis=1)[visible]
    assert np.percentile(error, 99) < 0.01  # exact: both reproject the same depth with the same poses


def test_training_on_geometry_labels_with_a_trainable_encoder(
    rendered_drill: Path, tmp_path: Path, tiny_fused_model: dict
) -> None:
    recipe = {
        "model": {**tiny_fused_model, "output_stride": 4, "semantic_trainable": True},
        "labels": "geometry",
        "masks": "folder",
        "sampler": {"num_matches": 300, "non_matches_per_match": 30},
        "optimizer": {"lr": 0.003, "encoder_lr": 0.0003},
        "flow": {"chain": 4, "chain_min": 1},
        "batch_size": 1,
        "image_height": 96,
        "image_width": 128,
        "epochs": 1,
        "steps_per_epoch": 4,
        "val_pairs": 2,
        "val_points": 100,
    }
    config = from_mapping(TrainConfig, recipe)
    train_set, val_set = build_datasets(config, [rendered_drill / "rgb"], [rendered_drill / "mask"])
    trainer = Trainer(config, train_set, val_set, tmp_path / "run")
    groups = trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.003, 0.0003]
    assert len(groups[1]["params"]) == len(list(trainer.net.body.encoder.parameters()))
    encoder = {k: v.clone() for k, v in trainer.net.body.encoder.state_dict().items()}
    summary = trainer.fit()
    assert trainer.encoder_cache is None and not (tmp_path / "run" / "label_quality.csv").exists()
    assert np.isfinite(summary["final_val_loss"])
    trained = load_checkpoint(tmp_path / "run" / "last").body.encoder.state_dict()
    statistics = [k for k in encoder if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(torch.equal(encoder[k], trained[k]) for k in statistics)  # ImageNet's BN statistics
    assert any(not torch.equal(v, trained[k]) for k, v in encoder.items() if k not in statistics)  # weights learned
