"""`dense-descriptors render object|stereo`: write a rendered ground-truth dataset folder (reused when up to date)."""

from __future__ import annotations

import argparse
import logging

from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset, write_stereo_dataset
from dense_descriptors_ros.synthetic.object_renderer import TARGET_NAMES
from dense_descriptors_ros.synthetic.textures import BACKGROUND_NAMES

LOG = logging.getLogger(__name__)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        choices=("object", "stereo"),
        help="object: a textured object tumbling over a background (tracking, descriptors); "
        "stereo: rectified pairs along a loop through a room (SLAM)",
    )
    parser.add_argument("--out", required=True, help="dataset folder to write (reused if made with the same options)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--frames", type=int, default=None, help="frames (default: 200 object, 240 stereo)")
    parser.add_argument("--width", type=int, default=320, help="image width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="image height (default 240)")
    parser.add_argument("--object", default="drill", choices=TARGET_NAMES, help="object sequences: target object")
    parser.add_argument(
        "--background", default="photo", choices=BACKGROUND_NAMES, help="object sequences: background image"
    )
    parser.add_argument("--baseline", type=float, default=0.12, help="stereo sequences: baseline in metres")


def run_render(args: argparse.Namespace) -> int:
    size = {"width": args.width, "height": args.height}
    if args.kind == "object":
        seq = write_object_dataset(
            args.out,
            seed=args.seed,
            n_frames=args.frames or 200,
            object=args.object,
            background=args.background,
            **size,
        )
        LOG.info(
            "%s: %d frames of %s over %s, %dx%d",
            args.out,
            len(seq),
            args.object,
            args.background,
            seq.width,
            seq.height,
        )
    else:
        seq = write_stereo_dataset(
            args.out, seed=args.seed, n_frames=args.frames or 240, baseline=args.baseline, **size
        )
        LOG.info(
            "%s: %d stereo pairs, %dx%d, baseline %.3f m, path %.2f m, %d loop-closure pairs",
            args.out,
            len(seq),
            seq.width,
            seq.height,
            seq.baseline,
            seq.path_length(),
            len(seq.loop_closures()),
        )
    return 0
