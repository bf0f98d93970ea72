"""The videos of the ``rendered`` suite (papers/000 section 4) and the frame pairs and object points drawn from them.

Each object is rendered over two backgrounds with the same seed (same object, motion and light); the first half of a
video is "train", the second half "test".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dense_descriptors_ros.evaluation.suites.correspondences import subsample
from dense_descriptors_ros.evaluation.suites.settings import SuiteSettings
from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset
from dense_descriptors_ros.synthetic.object_renderer import ObjectSequence, correspondences

SPLIT_PAIRS = (("train", "train"), ("train", "test"), ("test", "test"))


@dataclass
class ObjectVideos:
    """The videos of one object over each background (same seed: same object, motion and light), as one sequence.

    Frame t of background b is frame b * n + t of ``seq``, so ``object_renderer.correspondences`` links frames across
    backgrounds. The first half of each video is "train", the second half "test" (papers/000 section 4).
    """

    name: str
    seq: ObjectSequence
    n: int  # frames per video


def render_object_videos(obj: str, settings: SuiteSettings) -> ObjectVideos:
    """Videos of ``obj`` over each of ``settings.backgrounds``, rendered into ``settings.render_dir`` once."""
    folder = Path(settings.render_dir)
    videos = [
        write_object_dataset(
            folder / f"{obj}_{bg}_seed{settings.seed}_{settings.render_frames}",
            seed=settings.seed,
            n_frames=settings.render_frames,
            object=obj,
            background=bg,
        )
        for bg in settings.backgrounds
    ]
    first = videos[0]
    combined = ObjectSequence(
        rgb=np.concatenate([v.rgb for v in videos]),
        depth=np.concatenate([v.depth for v in videos]),
        instance_ids=np.concatenate([v.instance_ids for v in videos]),
        poses=np.concatenate([v.poses for v in videos]),
        K=first.K,
        background=first.background,
        lights=np.concatenate([v.lights for v in videos]),
        instance_names=first.instance_names,
    )
    return ObjectVideos(obj, combined, settings.render_frames)


def object_correspondences(
    seq: ObjectSequence, i: int, j: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` random target-object pixels of frame i that are visible in frame j, and where they land."""
    ys, xs = np.nonzero(seq.masks[i])
    pts_i = np.column_stack([xs, ys]).astype(np.float64)
    pts_j, visible = correspondences(seq, i, j, pts_i)
    return subsample(pts_i[visible], pts_j[visible], count, rng)


def sample_frame_pairs(
    seq: ObjectSequence,
    n: int,
    splits: tuple[str, str],
    other_background: bool,
    count: int,
    rng: np.random.Generator,
    min_points: int = 20,
) -> list[tuple[int, int]]:
    """Random (i, j) frame pairs: i from split 0 of background 0, j from split 1 of background 0 or 1."""
    half = {"train": (0, n // 2), "test": (n // 2, n)}
    offset = n if other_background else 0
    pairs: list[tuple[int, int]] = []
    for _ in range(50 * count):
        if len(pairs) == count:
            break
        i = int(rng.integers(*half[splits[0]]))
        j = int(rng.integers(*half[splits[1]])) + offset
        if i == j or (i, j) in pairs:
            continue
        if len(object_correspondences(seq, i, j, min_points, rng)[0]) >= min_points:
            pairs.append((i, j))
    return pairs
