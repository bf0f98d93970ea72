"""`dense-descriptors pretrained`: save the out-of-the-box model as a checkpoint, or refit its projection.

The checkpoint holds frozen ImageNet MobileNetV2 weights and the semantic projection shipped in model/data/
(see model/pretrained.py). ``--refit`` recomputes that projection from the package's own rendered training scenes
(every object over several backgrounds, seeds 100 and up: never the evaluation suites' seed 0) and writes the
shipped file; the result is deterministic for a given renderer and torch build.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.model.checkpoint import save_checkpoint
from dense_descriptors_ros.model.network import DescriptorNet
from dense_descriptors_ros.model.pretrained import PRETRAINED_CONFIG, pretrained_network
from dense_descriptors_ros.model.semantic_projection import (
    fit_semantic_projection,
    save_projection,
    shipped_projection_file,
)
from dense_descriptors_ros.synthetic.object_renderer import TARGET_NAMES, render_object_sequence
from dense_descriptors_ros.synthetic.textures import BACKGROUND_NAMES

log = logging.getLogger(__name__)
REFIT_SEED = 100  # scenes of the refit: seeds REFIT_SEED + k, far from the suites' seed 0


def refit_scenes(frames_per_scene: int = 40, every: int = 4) -> list[np.ndarray]:
    """Frames of every rendered object over the backgrounds in turn, at 320x240 and shrunk to 160x120."""
    images = []
    for k, obj in enumerate(tqdm(TARGET_NAMES, desc="render refit scenes", unit="scene")):
        background = BACKGROUND_NAMES[k % len(BACKGROUND_NAMES)]
        seq = render_object_sequence(
            n_frames=frames_per_scene, progress=False, object=obj, background=background, seed=REFIT_SEED + k
        )
        for frame in seq.rgb[::every]:
            images += [frame, cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA)]
    return images


def add_pretrained_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="checkpoint folder to write (weights.pt + model.yaml)")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="recompute the semantic projection from rendered scenes (needs EGL) and write the shipped file",
    )


def run_pretrained(args: argparse.Namespace) -> int:
    if not args.out and not args.refit:
        raise ValueError("nothing to do: give --out DIR (write the checkpoint) and/or --refit")
    if args.refit:
        net = DescriptorNet(PRETRAINED_CONFIG)
        explained = fit_semantic_projection(net, refit_scenes())
        path = save_projection(
            net, shipped_projection_file(net), scenes=list(TARGET_NAMES), seed=REFIT_SEED, explained=explained
        )
        print(f"wrote {path}: {explained:.1%} of the semantic feature variance in {net.config.semantic_dim} dims")
    if args.out:
        net = pretrained_network()
        provenance = {"made_by": "dense-descriptors pretrained", "projection": shipped_projection_file(net).name}
        folder = save_checkpoint(Path(args.out), net, provenance)
        print(f"wrote {folder}: out-of-the-box model (frozen ImageNet MobileNetV2 + shipped projection)")
    return 0
