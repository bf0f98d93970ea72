"""The package's Fast DDS profile for large messages (config/fastdds_large_messages.xml) and the environment that
hands it to a node process: descriptor images are MBs, and without it Fast DDS sends them as fragmented UDP over
loopback instead of through shared memory (README "Large messages"). Kept free of ROS and torch imports: launch
files import it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROFILE_FILE = "fastdds_large_messages.xml"
# FASTRTPS_... is the variable Jazzy's Fast DDS 2 reads, FASTDDS_... the one of Fast DDS 3.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def large_messages_env(config_dir: str | Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Extra environment for a node: the profile in ``config_dir``, unless ``environ`` already names a profile (the
    user's wins)."""
    if any(name in environ for name in PROFILE_VARIABLES):
        return {}
    return {PROFILE_VARIABLES[0]: str(Path(config_dir) / PROFILE_FILE)}
