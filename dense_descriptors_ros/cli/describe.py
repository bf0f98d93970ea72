"""`dense-descriptors describe`: descriptor images (.npy, optional) and their fixed-PCA colouring (.png) for frames."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.cli.frame_input import add_frame_input_arguments, open_frames_and_engine
from dense_descriptors_ros.cli.parameter_files import add_params_argument, read_node_parameters
from dense_descriptors_ros.io.atomic_files import atomic_path
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer

log = logging.getLogger(__name__)


def add_describe_arguments(parser: argparse.ArgumentParser) -> None:
    add_frame_input_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--save-descriptors", action="store_true", help="also write (H, W, D) float16 .npy files")
    add_params_argument(parser, "descriptor_node")


def run_describe(args: argparse.Namespace) -> int:
    source, engine = open_frames_and_engine(args, read_node_parameters(args.params, "descriptor_node"), log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    colorizer = DescriptorColorizer()
    count = 0
    for index, (_, rgb) in enumerate(tqdm(source, desc="describe", unit="frame")):
        descriptors = engine.compute(rgb)
        viz = colorizer(descriptors)
        with atomic_path(out / f"{index:06d}_viz.png") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(np.hstack([rgb, viz]), cv2.COLOR_RGB2BGR))
        if args.save_descriptors:
            with atomic_path(out / f"{index:06d}_descriptors.npy") as tmp:
                np.save(tmp, descriptors.astype(np.float16))
        count += 1
    if count == 0:
        raise ValueError(f"{source.describe()}: no frames selected")
    log.info("wrote %d frame(s) to %s (image | descriptor colouring)", count, out)
    return 0
