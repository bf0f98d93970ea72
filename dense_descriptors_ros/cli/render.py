"""`dense-descriptors render object|stereo|lmo`: write a rendered ground-truth dataset folder (object and stereo:
reused when up to date).

``object``: a textured object tumbling over a background (tracking, descriptors); ``stereo``: rectified pairs along
a loop through a room (SLAM); ``lmo``: training folders of the real BOP LM-O views (first half of the frames, one per
object, with depth rendered from the meshes, for ``train --set labels=geometry``; the ``lmo`` evaluation suite tests
on the second half). Every field of the scene's config (ObjectSceneConfig, StereoSceneConfig) is an option.
Rendering needs a headless OpenGL (EGL) driver; without one the command ends with one line saying so.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.evaluation.suites.lmo import write_lmo_training_folders
from dense_descriptors_ros.synthetic.dataset_folders import write_object_dataset, write_stereo_dataset
from dense_descriptors_ros.synthetic.object_renderer import ObjectSceneConfig
from dense_descriptors_ros.synthetic.stereo_renderer import StereoSceneConfig

log = logging.getLogger(__name__)

SCENES = {
    "object": (
        ConfigOptions(ObjectSceneConfig, names={"n_frames": "frames"}),
        "a textured object tumbling over a background (tracking, descriptors)",
    ),
    "stereo": (
        ConfigOptions(StereoSceneConfig, names={"n_frames": "frames"}),
        "rectified stereo pairs along a loop through a room (SLAM)",
    ),
}


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (options, help_text) in SCENES.items():
        scene = kinds.add_parser(kind, help=help_text, description=help_text)
        scene.add_argument(
            "--out", required=True, help="dataset folder to write (reused if made with the same options)"
        )
        options.add_to(scene, f"{kind} scene settings")
    lmo_help = "training folders of the real BOP LM-O views (first half of the frames; depth from the meshes)"
    lmo = kinds.add_parser("lmo", help=lmo_help, description=lmo_help)
    lmo.add_argument(
        "--out", required=True, help="folder to write: one sub-folder per object (rgb/, mask/, geometry.npz)"
    )
    lmo.add_argument("--data-dir", default="", help="shared data folder (default: $DDR_DATA_DIR or ../shared/data)")


def run_render(args: argparse.Namespace) -> int:
    if args.kind == "lmo":
        folders = write_lmo_training_folders(args.out, args.data_dir or None)
        log.info("%s: training folders of %d objects: %s", args.out, len(folders), " ".join(f.name for f in folders))
        return 0
    options, _ = SCENES[args.kind]
    settings = dataclasses.asdict(options.build(args))
    if args.kind == "object":
        seq = write_object_dataset(args.out, **settings)
        log.info(
            "%s: %d frames of %s over %s, %dx%d",
            args.out,
            len(seq),
            settings["object"],
            settings["background"],
            seq.width,
            seq.height,
        )
    else:
        seq = write_stereo_dataset(args.out, **settings)
        log.info(
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
