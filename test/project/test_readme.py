"""README.md stays true: node parameters, launch files and subcommands are documented; CI runs its test command."""

import dataclasses
import importlib
import re
from pathlib import Path

import pytest
from test_launch_files import NODE_CONFIGS

from dense_descriptors_ros.cli.main import SUBCOMMANDS
from dense_descriptors_ros.config import field_specs

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _parameters(cls, prefix=""):
    for spec in field_specs(cls):
        if dataclasses.is_dataclass(spec.type):
            yield from _parameters(spec.type, f"{prefix}{spec.name}.")
        else:
            yield prefix + spec.name


@pytest.mark.parametrize("executable", sorted(NODE_CONFIGS))
def test_every_node_parameter_is_in_the_readme(executable):
    module, cls = NODE_CONFIGS[executable].split(":")
    config = getattr(importlib.import_module(module), cls)
    section = README.split(f"### {executable}", 1)[1].split("\n### ", 1)[0]
    missing = [name for name in _parameters(config) if f"`{name}`" not in section]
    assert not missing, f"README section {executable} lacks parameters {missing}"


def test_launch_files_and_subcommands_are_documented():
    for path in (REPO / "launch").glob("*.launch.py"):
        assert f"`{path.name}`" in README, path.name
    for name in SUBCOMMANDS:
        assert f"dense-descriptors {name}" in README, name


def test_ci_runs_the_readme_test_command():
    command = re.search(r"^make test ", README, re.MULTILINE)
    assert command, "README must show `make test`"
    assert "make test" in (REPO / ".ci" / "run").read_text()
