"""Loaders for the small real datasets with ground truth in ``shared/data`` (see its README.md).

The folder comes from the ``DDR_DATA_DIR`` environment variable, by default ``../shared/data`` relative to the
repository root. A missing dataset raises :class:`DatasetMissing` with the path it looked for, so benchmarks and
suites can skip with a message. Images are returned as uint8 RGB (H, W, 3) (EuRoC: mono (H, W)).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from dense_descriptors_ros.geometry.trajectory import Trajectory, read_tum_trajectory

DATA_ENV = "DDR_DATA_DIR"
SINTEL_SEQUENCES = ("alley_1_easy", "cave_2_medium", "market_5_hard")
SINTEL_PASSES = ("clean", "final")
FLO_MAGIC = 202021.25


class DatasetMissing(FileNotFoundError):
    """A dataset folder or file under the data root is absent."""


def data_root() -> Path:
    """The shared data folder: $DDR_DATA_DIR, else ../shared/data next to the repository root."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """``root / name`` (root defaults to data_root()), or DatasetMissing naming the path and the env variable."""
    folder = Path(root) if root is not None else data_root()
    path = folder / name
    if not path.is_dir():
        raise DatasetMissing(f"dataset {name!r} not found at {path} (set {DATA_ENV} to the shared data folder)")
    return path


def _require(path: Path) -> Path:
    if not path.exists():
        raise DatasetMissing(f"missing dataset file: {path}")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3) image from a file."""
    image = cv2.imread(str(_require(path)), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mono(path: Path) -> np.ndarray:
    """uint8 (H, W) image from a file."""
    image = cv2.imread(str(_require(path)), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return image


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury .flo optical flow file -> float32 (H, W, 2) of (u, v) pixels."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != FLO_MAGIC:
        raise ValueError(f"{path}: not a .flo file (magic number {FLO_MAGIC} missing)")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    expected = 12 + width * height * 2 * 4
    if len(data) != expected or width <= 0 or height <= 0:
        raise ValueError(f"{path}: size {len(data)} B does not match a {width}x{height} flow ({expected} B)")
    return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).copy()


@dataclass
class HPatchesSequence:
    """Reference image ``images[0]`` and ``homographies[k-1]`` = H_1_(k+1) mapping image-1 pixels to image k+1."""

    name: str
    images: list[np.ndarray]
    homographies: list[np.ndarray]


def load_hpatches(root: str | Path | None = None, name: str = "hpatches_v_churchill") -> HPatchesSequence:
    folder = dataset_dir(name, root)
    images = [read_rgb(folder / f"{k}.png") for k in range(1, 7)]
    homographies = [np.loadtxt(_require(folder / f"H_1_{k}")).reshape(3, 3) for k in range(2, 7)]
    return HPatchesSequence(name, images, homographies)


@dataclass
class SintelPair:
    """Frames 2 and 3 of a Sintel sequence, the GT forward flow 2 -> 3 and its occluded / invalid masks (bool)."""

    name: str
    render_pass: str
    frame1: np.ndarray
    frame2: np.ndarray
    flow: np.ndarray
    occluded: np.ndarray
    invalid: np.ndarray


def load_sintel_pair(sequence: str, render_pass: str = "clean", root: str | Path | None = None) -> SintelPair:
    if sequence not in SINTEL_SEQUENCES:
        raise ValueError(f"unknown Sintel sequence {sequence!r}; choose from {list(SINTEL_SEQUENCES)}")
    if render_pass not in SINTEL_PASSES:
        raise ValueError(f"render_pass must be one of {SINTEL_PASSES}, got {render_pass!r}")
    folder = dataset_dir("sintel", root) / sequence
    return SintelPair(
        name=sequence,
        render_pass=render_pass,
        frame1=read_rgb(folder / render_pass / "frame_0002.png"),
        frame2=read_rgb(folder / render_pass / "frame_0003.png"),
        flow=read_flo(_require(folder / "gt" / "frame_0002.flo")),
        occluded=read_mono(folder / "gt" / "occlusions" / "frame_0002.png") > 127,
        invalid=read_mono(folder / "gt" / "invalid" / "frame_0002.png") > 127,
    )


@dataclass
class DavisSequence:
    """Consecutive frames (RGB) and binary object masks of one DAVIS 2016 sequence."""

    name: str
    frames: list[np.ndarray]
    masks: list[np.ndarray]


def davis_sequences(root: str | Path | None = None) -> list[str]:
    """Names of the DAVIS sequences present."""
    folder = dataset_dir("davis2016", root) / "JPEGImages" / "480p"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def load_davis_sequence(name: str, root: str | Path | None = None, max_frames: int | None = None) -> DavisSequence:
    base = dataset_dir("davis2016", root)
    frame_dir = base / "JPEGImages" / "480p" / name
    mask_dir = base / "Annotations" / "480p" / name
    frame_files = sorted(_require(frame_dir).glob("*.jpg"))[:max_frames]
    if not frame_files:
        raise DatasetMissing(f"no frames in {frame_dir}")
    frames = [read_rgb(f) for f in frame_files]
    masks = [read_mono(mask_dir / f"{f.stem}.png") > 127 for f in frame_files]
    return DavisSequence(name, frames, masks)


@dataclass
class EurocCamera:
    """Pinhole intrinsics K, radial-tangential distortion (k1 k2 p1 p2) and T_body_cam of one EuRoC camera."""

    K: np.ndarray
    distortion: np.ndarray
    T_body_cam: np.ndarray
    resolution: tuple[int, int] = field(default=(752, 480))


# Ground-truth file of each staged EuRoC folder and the frame whose poses it holds.
EUROC_GROUNDTRUTH = {
    "euroc_v101_micro": ("groundtruth_V101_tum.txt", "body"),
    "euroc_mh01_stereo_0100_0299": ("groundtruth/groundtruth_cam0_tum.txt", "cam0"),
}


@dataclass
class EurocStereo:
    """EuRoC stereo pairs (mono, unrectified), timestamps in ns, both cameras and the GT poses of
    ``groundtruth_frame`` (``body``: the IMU, ``cam0``: the left camera's optical frame) in the world."""

    left: list[np.ndarray]
    right: list[np.ndarray]
    timestamps_ns: np.ndarray
    cam0: EurocCamera
    cam1: EurocCamera
    groundtruth: Trajectory
    groundtruth_frame: str


def _read_euroc_camera(path: Path) -> EurocCamera:
    text = _require(path).read_text()
    data = yaml.safe_load("\n".join(line for line in text.splitlines() if not line.startswith("%YAML")))
    fu, fv, cu, cv = data["intrinsics"]
    return EurocCamera(
        K=np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1]], dtype=np.float64),
        distortion=np.array(data["distortion_coefficients"], dtype=np.float64),
        T_body_cam=np.array(data["T_BS"]["data"], dtype=np.float64).reshape(4, 4),
        resolution=tuple(data["resolution"]),
    )


def load_euroc(root: str | Path | None = None, name: str = "euroc_v101_micro") -> EurocStereo:
    """One of the staged EuRoC folders (:data:`EUROC_GROUNDTRUTH`)."""
    gt_file, gt_frame = EUROC_GROUNDTRUTH[name]
    cams = dataset_dir(name, root) / "mav0"
    stamps = np.array(
        [
            int(line.split(",")[0])
            for line in _require(cams / "cam0" / "data.csv").read_text().splitlines()
            if line and not line.startswith("#")
        ],
        dtype=np.int64,
    )
    return EurocStereo(
        left=[read_mono(cams / "cam0" / "data" / f"{t}.png") for t in stamps],
        right=[read_mono(cams / "cam1" / "data" / f"{t}.png") for t in stamps],
        timestamps_ns=stamps,
        cam0=_read_euroc_camera(cams / "cam0" / "sensor.yaml"),
        cam1=_read_euroc_camera(cams / "cam1" / "sensor.yaml"),
        groundtruth=read_tum_trajectory(cams.parent / gt_file),
        groundtruth_frame=gt_frame,
    )


LMO_FOLDER = "bop_lmo_scene2_100"


@dataclass
class BopInstance:
    """One annotated object in one view: its BOP object id, pose ``T_cam_obj`` (4x4, metres) and the share of it
    the camera sees (``visib_fract`` of scene_gt_info.json)."""

    obj_id: int
    T_cam_obj: np.ndarray
    visible_fraction: float


@dataclass
class BopScene:
    """A BOP scene folder: frame ids (sorted), intrinsics K (the same for every frame), the annotated instances of
    each frame, the object meshes (``models_eval`` PLY files, millimetres) by object id and the ids of the objects
    BOP lists as symmetric (their annotated poses may flip between equivalent ones). ``rgb(frame)`` reads one
    frame."""

    folder: Path
    frames: list[int]
    K: np.ndarray
    instances: dict[int, list[BopInstance]]
    model_files: dict[int, Path]
    symmetric: set[int]

    def rgb(self, frame: int) -> np.ndarray:
        return read_rgb(self.folder / "rgb" / f"{frame:06d}.png")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(_require(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def load_lmo_scene(root: str | Path | None = None, name: str = LMO_FOLDER) -> BopScene:
    """The staged BOP Linemod-Occluded scene 2 (100 views of 8 texture-less objects; see the data README): only the
    frames whose RGB image is present."""
    base = dataset_dir(name, root) / "lmo"
    folder = base / "test" / "000002"
    frames = sorted(int(p.stem) for p in _require(folder / "rgb").glob("*.png"))
    if not frames:
        raise DatasetMissing(f"no frames in {folder / 'rgb'}")
    gt, info, cameras = (_read_json(folder / f"scene_{part}.json") for part in ("gt", "gt_info", "camera"))
    intrinsics = {tuple(cameras[str(f)]["cam_K"]) for f in frames}
    if len(intrinsics) != 1:
        raise ValueError(f"{folder}: the frames have {len(intrinsics)} different intrinsics; expected one camera")
    instances: dict[int, list[BopInstance]] = {}
    for frame in frames:
        instances[frame] = []
        for pose, visibility in zip(gt[str(frame)], info[str(frame)], strict=True):
            T = np.eye(4)
            T[:3, :3] = np.asarray(pose["cam_R_m2c"], np.float64).reshape(3, 3)
            T[:3, 3] = np.asarray(pose["cam_t_m2c"], np.float64) / 1000.0
            instances[frame].append(BopInstance(int(pose["obj_id"]), T, float(visibility["visib_fract"])))
    models = base / "models_eval"
    ids = sorted({i.obj_id for frame in instances.values() for i in frame})
    info = _read_json(models / "models_info.json")
    symmetric = {int(obj) for obj, keys in info.items() if any(key.startswith("symmetries") for key in keys)}
    return BopScene(
        folder=folder,
        frames=frames,
        K=np.asarray(next(iter(intrinsics)), np.float64).reshape(3, 3),
        instances=instances,
        model_files={obj: _require(models / f"obj_{obj:06d}.ply") for obj in ids},
        symmetric=symmetric,
    )
