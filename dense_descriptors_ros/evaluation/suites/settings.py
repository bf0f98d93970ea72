"""The settings every evaluation suite shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.tracking.label_propagation import PropagationConfig


@dataclass
class SuiteSettings:
    """What every suite shares: the image size, the number of query points, the seed and the data folder."""

    max_side: int = field(
        default=512,
        metadata={"help": "shrink images so the longer side is at most this (0: keep)", "range": (0, 8192)},
    )
    points: int = field(default=1000, metadata={"help": "query points per image pair", "range": (1, 10**6)})
    seed: int = field(default=0, metadata={"help": "seed of point subsampling and negative sampling"})
    data_dir: str | None = field(
        default=None, metadata={"help": "shared data folder (default: $DDR_DATA_DIR or ../shared/data)"}
    )
    sequences: tuple[str, ...] = field(default=(), metadata={"help": "DAVIS sequences (empty: all present)"})
    max_frames: int | None = field(
        default=None, metadata={"help": "DAVIS frames per sequence (None: all)", "range": (1, 10**6)}
    )
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    objects: tuple[str, ...] = field(default=("drill", "hulk"), metadata={"help": "rendered: objects"})
    backgrounds: tuple[str, str] = field(
        default=("photo", "blocks"), metadata={"help": "rendered: the two backgrounds (same / different)"}
    )
    render_frames: int = field(
        default=100, metadata={"help": "rendered: frames per video (half train, half test)", "range": (4, 10**5)}
    )
    pairs: int = field(
        default=20,
        metadata={"help": "rendered, lmo: frame pairs per protocol cell / viewpoint bin", "range": (1, 10**5)},
    )
    render_dir: str = field(default="rendered_data", metadata={"help": "rendered: folder of the rendered videos"})

    def __post_init__(self) -> None:
        if len(self.backgrounds) != 2:
            raise ConfigError(f"backgrounds: needs exactly two names (same, different), got {list(self.backgrounds)}")
