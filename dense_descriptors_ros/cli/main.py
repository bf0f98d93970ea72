"""`dense-descriptors`: the library from the command line, without ROS.

One module per subcommand (``add_<name>_arguments`` + ``run_<name>``); this file only wires them together, so
`dense-descriptors <cmd> --help` documents every option, and it is the one place where bad input becomes a
one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib import import_module

from dense_descriptors_ros.model.omp_wait import OMP_WAIT_POLICIES, set_omp_wait_policy
from dense_descriptors_ros.synthetic.gl_rasterizer import RendererUnavailable

# subcommand -> (module, help); each module provides add_<name>_arguments(parser) and run_<name>(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dense_descriptors_ros.cli.demo", "run the main job on a generated sequence and write the results"),
    "train": ("dense_descriptors_ros.cli.train", "train a descriptor network self-supervised from video"),
    "evaluate": ("dense_descriptors_ros.cli.evaluate", "evaluate a model against baselines; writes a report"),
    "render": ("dense_descriptors_ros.cli.render", "render a ground-truth object or stereo dataset"),
    "track": ("dense_descriptors_ros.cli.track", "track points through a video, folder or bag"),
    "slam": ("dense_descriptors_ros.cli.slam", "stereo SLAM on rectified image folders: trajectory + map"),
    "describe": ("dense_descriptors_ros.cli.describe", "compute descriptor images and their colouring for frames"),
    "export": ("dense_descriptors_ros.cli.export", "export a checkpoint to ONNX and check it"),
    "pretrained": ("dense_descriptors_ros.cli.pretrained", "save the out-of-the-box model (no training needed)"),
}
EXIT_BAD_INPUT = 2
log = logging.getLogger("dense-descriptors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dense-descriptors",
        description="Self-supervised dense visual descriptors: train, evaluate, track, SLAM, export.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (and tracebacks of errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        getattr(module, f"add_{name}_arguments")(command)
        command.set_defaults(run=getattr(module, f"run_{name}"))
    return parser


def omp_wait_policy_option(argv: list[str]) -> str | None:
    """The value of ``--omp-wait-policy`` in ``argv``, read before the subcommands import torch (torch reads the
    policy only then, model/omp_wait.py); None when absent or invalid (argparse then reports it)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--omp-wait-policy="):
            value = arg.partition("=")[2]
        elif arg == "--omp-wait-policy" and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            continue
        return value if value in OMP_WAIT_POLICIES else None
    return None


def main(argv: list[str] | None = None) -> int:
    set_omp_wait_policy(omp_wait_policy_option(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (ValueError, OSError, RendererUnavailable) as exc:
        # Bad input (ConfigError, CheckpointError, a missing file, ...) or a machine without the OpenGL driver the
        # renderer needs is one line, not a traceback.
        log.debug("traceback of the error below", exc_info=True)
        message = " ".join(str(exc).split("\n"))
        print(f"dense-descriptors {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
