"""`dense-descriptors describe`: descriptor images (.npy, optional) and their fixed-PCA colouring (.png) for frames."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dense_descriptors_ros.io.frame_sources import open_frame_source
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig, open_engine

log = logging.getLogger(__name__)


def add_describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file, image folder or rosbag2 (folder, .mcap or .db3)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default="", help="checkpoint folder (empty: untrained network)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--max-side", type=int, default=640, help="inference resolution cap (0 = none)")
    parser.add_argument("--topic", default=None, help="image topic, for bags with several")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--save-descriptors", action="store_true", help="also write (H, W, D) float16 .npy files")


def run_describe(args: argparse.Namespace) -> int:
    options = {"stride": args.stride, "max_frames": args.max_frames}
    if args.topic:
        options["topic"] = args.topic
    source = open_frame_source(args.input, **options)
    engine = open_engine(DescriptorSourceConfig(model_dir=args.model, device=args.device, max_side=args.max_side), log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    colorizer = DescriptorColorizer()
    count = 0
    for index, (_, rgb) in enumerate(tqdm(source, desc="describe", unit="frame")):
        descriptors = engine.compute(rgb)
        viz = colorizer(descriptors)
        cv2.imwrite(str(out / f"{index:06d}_viz.png"), cv2.cvtColor(np.hstack([rgb, viz]), cv2.COLOR_RGB2BGR))
        if args.save_descriptors:
            np.save(out / f"{index:06d}_descriptors.npy", descriptors.astype(np.float16))
        count += 1
    if count == 0:
        raise ValueError(f"{source.describe()}: no frames selected")
    log.info("wrote %d frame(s) to %s (image | descriptor colouring)", count, out)
    return 0
