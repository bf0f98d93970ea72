"""TrackerConfig: the settings of the PointTracker (tracking/point_tracker.py), shared by the CLI and tracker_node."""

from __future__ import annotations

from dataclasses import dataclass, field

from dense_descriptors_ros.config import ConfigError

SUBPIXEL_METHODS = ("parabola", "softargmax", "none")
STRATEGIES = ("reference", "propagate")


@dataclass
class TrackerConfig:
    strategy: str = field(
        default="propagate",
        metadata={
            "help": "reference: match against the creation descriptor only; propagate: frame-to-frame matching "
            "anchored by a memory of confident appearances",
            "choices": STRATEGIES,
        },
    )
    patch_size: int = field(
        default=5,
        metadata={
            "help": "side of the square patch whose mean descriptor is matched (papers/000: 5 = 25 pixels); 1 = "
            "single pixels",
            "range": (1, 15),
        },
    )
    search_radius: int = field(
        default=12,
        metadata={"help": "half-size in pixels of the local search window around the prediction", "range": (1, 128)},
    )
    subpixel: str = field(
        default="parabola",
        metadata={"help": "sub-pixel refinement of the best match on the similarity map", "choices": SUBPIXEL_METHODS},
    )
    softargmax_temperature: float = field(
        default=0.02,
        metadata={"help": "temperature of the 3x3 soft-argmax (subpixel=softargmax)", "range": (1e-4, 1.0)},
    )
    max_descriptor_distance: float = field(
        default=0.5,
        metadata={
            "help": "a match is occluded when the L2 distance of the unit descriptors exceeds this",
            "range": (0.0, 2.0),
        },
    )
    max_ratio: float = field(
        default=0.9,
        metadata={
            "help": "a match is occluded when best/second-best descriptor distance exceeds this (1 = off)",
            "range": (0.0, 1.0),
        },
    )
    ratio_exclusion_radius: float = field(
        default=3.0,
        metadata={
            "help": "the second best match is looked for outside this many pixels of the best",
            "range": (0.0, 64.0),
        },
    )
    consistency_radius: int = field(
        default=6,
        metadata={
            "help": "half-size of the reference-frame window of the forward-backward check (0 = no check)",
            "range": (0, 64),
        },
    )
    max_consistency_error: float = field(
        default=2.0,
        metadata={
            "help": "a match is occluded when it matches back farther than this many pixels from the query",
            "range": (0.0, 64.0),
        },
    )
    redetect: bool = field(
        default=True, metadata={"help": "search the whole image for tracks whose local match is lost"}
    )
    redetect_stride: int = field(
        default=4, metadata={"help": "pixel stride of the global re-detection search", "range": (1, 32)}
    )
    velocity_smoothing: float = field(
        default=0.8,
        metadata={
            "help": "weight of the newest displacement in the velocity estimate (0 = no motion model)",
            "range": (0.0, 1.0),
        },
    )
    lost_velocity_decay: float = field(
        default=0.5, metadata={"help": "velocity factor per frame while a track is lost", "range": (0.0, 1.0)}
    )
    auto_points: int = field(
        default=0,
        metadata={
            "help": "when the tracker has no tracks, select this many distinctive points automatically (0 = off)",
            "range": (0, 10000),
        },
    )
    distinctiveness_radius: int = field(
        default=4,
        metadata={"help": "pixel distance of the neighbours a distinctive point must differ from", "range": (1, 32)},
    )
    max_tracks: int = field(
        default=500,
        metadata={
            "help": "most tracks kept; new queries beyond it replace the longest-lost tracks, then the oldest",
            "range": (1, 100000),
        },
    )
    memory_size: int = field(
        default=8,
        metadata={
            "help": "strategy propagate: appearances remembered per track, the creation descriptor included",
            "range": (1, 64),
        },
    )
    memory_weight: float = field(
        default=0.5,
        metadata={
            "help": "strategy propagate: weight of the memory against the previous frame's descriptor in the score",
            "range": (0.0, 1.0),
        },
    )
    max_memory_distance: float = field(
        default=1.0,
        metadata={
            "help": "strategy propagate: a match farther than this from every remembered appearance is lost",
            "range": (0.0, 2.0),
        },
    )
    memory_ratio: float = field(
        default=0.8,
        metadata={
            "help": "strategy propagate: an appearance is remembered only when best/second-best distance is below "
            "this and the match is forward-backward consistent",
            "range": (0.0, 1.0),
        },
    )
    memory_novelty: float = field(
        default=0.9,
        metadata={
            "help": "strategy propagate: an appearance is remembered only when its similarity to every remembered "
            "one is below this",
            "range": (-1.0, 1.0),
        },
    )
    max_lost_frames: int = field(
        default=300,
        metadata={
            "help": "a track not found for more than this many frames in a row is dropped (0 = kept forever)",
            "range": (0, 10**7),
        },
    )

    def __post_init__(self) -> None:
        if self.patch_size % 2 == 0:
            raise ConfigError(f"patch_size must be odd, got {self.patch_size}")
        if self.subpixel not in SUBPIXEL_METHODS:
            raise ConfigError(f"subpixel {self.subpixel!r} is not one of {list(SUBPIXEL_METHODS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {self.strategy!r} is not one of {list(STRATEGIES)}")
