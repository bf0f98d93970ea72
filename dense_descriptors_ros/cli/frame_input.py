"""The arguments every command that runs the network over a video, image folder or bag shares."""

from __future__ import annotations

import argparse
from typing import Any

from dense_descriptors_ros.cli.config_options import ConfigOptions
from dense_descriptors_ros.cli.parameter_files import log_unused_parameters, take_parameters
from dense_descriptors_ros.io.frame_sources import FrameSource, open_frame_source
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig, open_engine
from dense_descriptors_ros.model.engine import DescriptorEngine

# The network settings, named as the nodes' parameters are (``--model`` is the model_dir parameter).
MODEL_OPTIONS = ConfigOptions(DescriptorSourceConfig, names={"model_dir": "model"})


def add_frame_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file, image folder or rosbag2 (folder, .mcap or .db3)")
    parser.add_argument("--topic", default=None, help="image topic, for bags with several")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    MODEL_OPTIONS.add_to(parser, "network")


def open_frames_and_engine(
    args: argparse.Namespace, params: dict[str, Any], logger: Any = None
) -> tuple[FrameSource, DescriptorEngine]:
    """The frame source and the engine named by ``add_frame_input_arguments``' arguments.

    ``params`` is what the command's other settings left of the node's ``--params`` file; the network settings
    are the last to take theirs, so what remains is logged as unused.
    """
    model = MODEL_OPTIONS.build(args, (args.params, take_parameters(params, MODEL_OPTIONS)))
    log_unused_parameters(args.params, params)
    options: dict[str, Any] = {"stride": args.stride, "max_frames": args.max_frames}
    if args.topic:
        options["topic"] = args.topic
    return open_frame_source(args.input, **options), open_engine(model, logger)
