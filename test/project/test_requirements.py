"""The requirement files pin every package (README: "pin what is installed"), so a fresh venv gets the versions
the suite passed with."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-ros.txt", "requirements-dev.txt"])
def test_every_requirement_is_pinned(name):
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    requirements = [line for line in lines if line]
    assert requirements
    unpinned = [line for line in requirements if "==" not in line]
    assert not unpinned, f"{name}: not pinned: {unpinned}"
