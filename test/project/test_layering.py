"""The package's floor plan holds: every module imports only packages of lower layers, library code never imports
cli/ or argparse, ROS stays in nodes/ (and the two places that bridge to it), and no source file grows past
MAX_LINES without its opening comment saying why (a line starting "Long file:")."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "dense_descriptors_ros"

# Lowest first (README "Architecture"). A package may import packages of lower layers only: not its own layer's
# other packages, not a higher layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),
    ("io",),
    ("geometry",),
    ("features",),
    ("metrics", "model"),
    ("learning", "tracking", "slam"),
    ("synthetic",),
    ("evaluation", "nodes"),
    ("cli",),
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}
# Only the command line parses arguments.
CLI_ONLY = {"argparse"}
# ROS Python packages: nodes/ uses them; io/image_conversion.py converts sensor_msgs/Image (and uses cv_bridge
# when it imports); cli/demo.py drives the real nodes.
ROS_PACKAGES = {
    "rclpy",
    "sensor_msgs",
    "sensor_msgs_py",
    "std_msgs",
    "std_srvs",
    "geometry_msgs",
    "nav_msgs",
    "visualization_msgs",
    "lifecycle_msgs",
    "builtin_interfaces",
    "tf2_ros",
    "message_filters",
    "cv_bridge",
    "rosidl_runtime_py",
}
ROS_ALLOWED = ("nodes/", "io/image_conversion.py", "cli/demo.py")
MAX_LINES = 450
SOURCE_FOLDERS = ("dense_descriptors_ros", "test", "benchmarks", "scripts", "launch", "training")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _unit(path: Path) -> str | None:
    """The layered unit of a package file: its top-level package or module (None for the package's __init__)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return None if parts == ("__init__",) else parts[0]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, function-level ones included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(REPO).with_suffix("").parts[: -node.level]
                yield node.lineno, ".".join((*package, *([node.module] if node.module else [])))
            elif node.module:
                yield node.lineno, node.module


def test_every_package_has_a_layer():
    units = {_unit(path) for path in _modules()} - {None}
    assert units <= set(LAYER), f"put {sorted(units - set(LAYER))} into a layer of LAYERS (and the README)"


def test_no_module_imports_its_own_layer_or_above():
    upward = []
    for path in _modules():
        unit = _unit(path)
        for line, name in _imports(path):
            parts = name.split(".")
            target = parts[1] if parts[0] == "dense_descriptors_ros" and len(parts) > 1 else None
            if unit is not None and target not in (None, unit) and LAYER[target] >= LAYER[unit]:
                upward.append(f"{path.relative_to(REPO)}:{line} ({unit}) imports {name}")
            if parts[0] in CLI_ONLY and unit != "cli":
                upward.append(f"{path.relative_to(REPO)}:{line} imports {name} outside cli/")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_ros_stays_in_the_nodes():
    outside = []
    for path in _modules():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(ROS_ALLOWED):
            continue
        outside += [
            f"{relative}:{line} imports {name}" for line, name in _imports(path) if name.split(".")[0] in ROS_PACKAGES
        ]
    assert not outside, "ROS imports outside nodes/:\n" + "\n".join(outside)


def _opening_comment(text: str) -> str:
    """The module docstring, or the comment lines at the top of a file without one."""
    try:
        docstring = ast.get_docstring(ast.parse(text))
    except SyntaxError:
        docstring = None
    if docstring:
        return docstring
    return "\n".join(line.lstrip("# ") for line in re.match(r"(?:#.*\n|\s*\n)*", text).group(0).splitlines())


def test_long_files_say_why():
    unexplained = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text()
            lines = text.count("\n")
            if lines > MAX_LINES and not re.search(r"^Long file: \S", _opening_comment(text), re.MULTILINE):
                unexplained.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert not unexplained, (
        f"over {MAX_LINES} lines without a 'Long file: <reason>' line in the opening comment; split them or say why:\n"
        + "\n".join(unexplained)
    )


@pytest.mark.parametrize(
    ("text", "explained"),
    [
        ('"""A module.\n\nLong file: one state machine that reads best in one place.\n"""\n', True),
        ("# A script.\n# Long file: generated tables.\nimport os\n", True),
        ('"""A module that is simply long."""\n', False),
    ],
)
def test_the_reason_is_read_from_the_opening_comment(text, explained):
    assert bool(re.search(r"^Long file: \S", _opening_comment(text), re.MULTILINE)) == explained
