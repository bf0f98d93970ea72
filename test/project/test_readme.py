"""README.md stays true: node parameters, launch files and subcommands are documented; CI runs its test command."""

import re
from pathlib import Path

from dense_descriptors_ros.cli.main import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_every_node_parameter_is_in_the_readme(node_executable, node_parameters):
    section = README.split(f"### {node_executable}", 1)[1].split("\n### ", 1)[0]
    missing = [name for name in node_parameters if f"`{name}`" not in section]
    assert not missing, f"README section {node_executable} lacks parameters {missing}"


def test_launch_files_and_subcommands_are_documented():
    for path in (REPO / "launch").glob("*.launch.py"):
        assert f"`{path.name}`" in README, path.name
    for name in SUBCOMMANDS:
        assert f"dense-descriptors {name}" in README, name


def test_ci_runs_the_readme_test_command():
    command = re.search(r"^make test ", README, re.MULTILINE)
    assert command, "README must show `make test`"
    assert "make test" in (REPO / ".ci" / "run").read_text()
