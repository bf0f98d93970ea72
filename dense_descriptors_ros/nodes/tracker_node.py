"""tracker_node: points found again in every frame by nearest neighbour in descriptor space (papers/000 Fig. 1).

By default it subscribes ``image`` and runs the descriptor network in-process (no 32FC<D> round trip); with
``input`` = ``descriptors`` it subscribes the ``descriptors`` topic of a descriptor_node instead (32FC<D> or
16FC<D>; the annotated image is then drawn on the descriptors' fixed-PCA colouring, as no camera image is there).
A descriptor_node publishes one descriptor per ``output_stride`` pixels of its inference image: the tracker reads
those maps at that stride (``descriptor_stride``; it samples the cells at sub-pixel image positions), so queries and
tracks are in the pixels of the image the descriptors were computed from.

Topics: in ``image`` or ``descriptors``, ``queries`` (geometry_msgs/PointStamped, pixel x/y: adds a track);
out ``tracks`` (PointCloud2: x, y, z, id, score, visible), ``tracks/markers`` (MarkerArray, stable ids,
DELETEALL on reset), ``tracks/image`` (annotated bgr8 with trails), optionally ``tracks/image_marker``
(visualization_msgs/ImageMarker, POINTS in pixels) and ``tracks/annotations`` (foxglove_msgs/ImageAnnotations, when
foxglove_msgs is installed). Services ``~/reset``, ``~/enable``, ``~/load_model`` (input image: swaps the network
while running; tracks survive only a model of the same descriptor space fingerprint, see descriptor_model_node.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import ImageMarker, MarkerArray

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.features.descriptor_image import all_finite
from dense_descriptors_ros.io.image_conversion import ImageError, image_to_numpy, numpy_to_image, to_rgb8
from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig, model_output_stride
from dense_descriptors_ros.nodes.descriptor_model_node import DescriptorModelNode
from dense_descriptors_ros.nodes.frame_worker_node import FrameNodeConfig
from dense_descriptors_ros.nodes.messages.foxglove_annotations import (
    FOXGLOVE_AVAILABLE,
    foxglove,
    tracks_to_image_annotations,
)
from dense_descriptors_ros.nodes.messages.tracks import (
    delete_all_markers,
    tracks_to_image_marker,
    tracks_to_markers,
    tracks_to_pointcloud2,
)
from dense_descriptors_ros.nodes.node_main import run_node
from dense_descriptors_ros.nodes.qos_profiles import QOS_NAMES, RELIABLE_OUT, qos_by_name
from dense_descriptors_ros.tracking.point_tracker import PointTracker, TrackFrame
from dense_descriptors_ros.tracking.track_drawing import TrackDrawer, TrackTrails
from dense_descriptors_ros.tracking.tracker_config import TrackerConfig

INPUTS = ("image", "descriptors")


@dataclass
class TrackerNodeConfig(FrameNodeConfig, DescriptorSourceConfig, TrackerConfig):
    input: str = field(
        default="image",
        metadata={
            "help": "image: run the network in this node; descriptors: subscribe a descriptor_node",
            "choices": INPUTS,
        },
    )
    descriptor_stride: int = field(
        default=0,
        metadata={
            "help": "input: descriptors: pixels of the image the descriptors were computed from per descriptor cell; "
            "0 = the output stride of model_dir's network (4 for the out-of-the-box model), right for a "
            "descriptor_node with the same model_dir and max_output_side 0; 1 for descriptor images at full "
            "resolution (descriptor_node max_output_side > 0)",
            "range": (0, 64),
        },
    )
    descriptors_qos: str = field(
        default="reliable",
        metadata={
            "help": "QoS of the descriptors subscription (input: descriptors), depth 1; large messages need reliable",
            "choices": QOS_NAMES,
        },
    )
    query_points: list[float] = field(
        default_factory=list,
        metadata={"help": "initial queries as a flat list x0, y0, x1, y1, ... in pixels of the first frame"},
    )
    marker_pixel_scale: float = field(
        default=0.001, metadata={"help": "metres per pixel of the markers in the image's frame", "range": (1e-6, 1.0)}
    )
    marker_labels: bool = field(default=True, metadata={"help": "publish a text label per track in tracks/markers"})
    trail_length: int = field(
        default=15,
        metadata={"help": "frames of trail drawn in tracks/image and tracks/annotations", "range": (0, 1000)},
    )
    image_marker: bool = field(
        default=True,
        metadata={
            "help": "publish tracks/image_marker: visualization_msgs/ImageMarker, POINTS in pixels with per-track "
            "colours, for an image display"
        },
    )
    foxglove_annotations: bool = field(
        default=True,
        metadata={
            "help": "publish tracks/annotations: foxglove_msgs/ImageAnnotations (points, trails, labels) for "
            "Foxglove's image panel; only when foxglove_msgs is installed"
        },
    )
    stats_period: float = field(
        default=10.0,
        metadata={"help": "seconds between log lines with processed/dropped counts (0 = off)", "range": (0.0, 3600.0)},
    )

    def __post_init__(self) -> None:
        TrackerConfig.__post_init__(self)
        if len(self.query_points) % 2:
            raise ConfigError(f"query_points needs x, y pairs; got {len(self.query_points)} numbers")

    def tracker_config(self) -> TrackerConfig:
        return TrackerConfig(**{f.name: getattr(self, f.name) for f in fields(TrackerConfig)})

    def input_stride(self) -> int:
        """Pixels per cell of the descriptor images of ``input: descriptors`` (``descriptor_stride``; 0 is resolved
        from the network of model_dir without loading its weights, a ValueError naming the file if unreadable)."""
        return self.descriptor_stride or model_output_stride(self)


# Tracks keep reference descriptors, windows and memories made with patch_size, consistency_radius and memory_size,
# and only the strategy that runs keeps its state up to date: those need a re-configure; every other matching
# setting applies from the next frame.
LIVE_TRACKER_SETTINGS = frozenset(f.name for f in fields(TrackerConfig)) - {
    "patch_size",
    "consistency_radius",
    "memory_size",
    "strategy",
}


class TrackerNode(DescriptorModelNode):
    CONFIG = TrackerNodeConfig
    LIVE_PARAMETERS = (
        DescriptorModelNode.LIVE_PARAMETERS
        | LIVE_TRACKER_SETTINGS
        | {"marker_pixel_scale", "marker_labels", "trail_length"}
    )

    def __init__(self, node_name: str = "tracker_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.tracker: PointTracker | None = None
        self.drawer = TrackDrawer()
        self.trails = TrackTrails()  # of tracks/annotations (the drawer keeps its own for tracks/image)
        self.colorizer = DescriptorColorizer()
        self._lock = threading.Lock()  # tracker state: worker thread vs. services and the queries topic
        self._pending_queries: list[tuple[float, float]] = []
        self._reset_requested = False
        self._stats_timer = None
        self._input_stride = 1
        self.create_service(Trigger, "~/reset", self._on_reset)

    def runs_model(self, config: TrackerNodeConfig) -> bool:
        return config.input == "image"

    def model_swapped(self, old: str, new: str) -> None:
        with self._lock:
            self._reset_requested = True
        self.get_logger().warning(
            f"tracks reset: the new model's descriptor space ({new}) is not the one they were made in ({old})"
        )

    def check_config(self) -> None:
        super().check_config()
        self._input_stride = self.config.input_stride() if self.config.input == "descriptors" else 1

    def make_publishers(self) -> dict[str, Any]:
        self.tracker = PointTracker(self.config.tracker_config())
        self.drawer = TrackDrawer(self.config.trail_length, self.config.marker_labels)
        self.trails = TrackTrails(self.config.trail_length)
        q = self.config.query_points
        self._pending_queries = list(zip(q[0::2], q[1::2], strict=True))
        publishers = {
            "tracks": self.create_publisher(PointCloud2, "tracks", RELIABLE_OUT),
            "markers": self.create_publisher(MarkerArray, "tracks/markers", RELIABLE_OUT),
            "image": self.create_publisher(Image, "tracks/image", RELIABLE_OUT),
        }
        if self.config.image_marker:
            publishers["image_marker"] = self.create_publisher(ImageMarker, "tracks/image_marker", RELIABLE_OUT)
        if self.config.foxglove_annotations and FOXGLOVE_AVAILABLE:
            publishers["annotations"] = self.create_publisher(
                foxglove.ImageAnnotations, "tracks/annotations", RELIABLE_OUT
            )
        elif self.config.foxglove_annotations:
            self.get_logger().info("foxglove_msgs is not installed: tracks/annotations is not published")
        return publishers

    def make_subscriptions(self) -> list:
        if self.config.input == "image":
            topic, qos = "image", qos_by_name(self.config.image_qos)
        else:
            topic, qos = "descriptors", qos_by_name(self.config.descriptors_qos, depth=1)
        overrides = QoSOverridingOptions.with_default_policies()
        if self.config.stats_period > 0:
            self._stats_timer = self.create_timer(self.config.stats_period, self._log_stats)
        return [
            self.create_subscription(Image, topic, self.receive, qos, qos_overriding_options=overrides),
            self.create_subscription(PointStamped, "queries", self._on_query, RELIABLE_OUT),
        ]

    def release_resources(self) -> None:
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
            self._stats_timer = None
        super().release_resources()

    def apply_live_parameters(self, names: set[str]) -> None:
        super().apply_live_parameters(names)
        with self._lock:
            if self.tracker is not None:
                self.tracker.config = self.config.tracker_config()
            if names & {"trail_length", "marker_labels"}:
                self.drawer = TrackDrawer(self.config.trail_length, self.config.marker_labels)
                self.trails = TrackTrails(self.config.trail_length)

    @property
    def pending_queries(self) -> int:
        """Queries received (``query_points``, the ``queries`` topic) that start tracks in the next processed frame."""
        with self._lock:
            return len(self._pending_queries)

    # --- services and queries --------------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._reset_requested = True
            self._pending_queries = []
        response.success, response.message = True, "tracks cleared; new queries or auto_points start new tracks"
        return response

    def _on_query(self, msg: PointStamped) -> None:
        with self._lock:
            self._pending_queries.append((float(msg.point.x), float(msg.point.y)))

    def diagnostic_values(self) -> dict[str, Any]:
        return {**super().diagnostic_values(), "tracks": self.tracker.num_tracks if self.tracker else 0}

    def _log_stats(self) -> None:
        self.get_logger().info("frames " + ", ".join(f"{k} {v}" for k, v in self.diagnostic_values().items()))

    # --- work ------------------------------------------------------------------------------------------------
    def _descriptors_and_image(self, msg: Image) -> tuple[np.ndarray, int, np.ndarray | None] | None:
        """(descriptors, pixels per descriptor cell, camera image or None) of a message, or None when it is bad.
        Camera frames give the network's own map where its cells tile the frame (DescriptorEngine.compute_map)."""
        try:
            array = image_to_numpy(msg, self.config.max_input_pixels)
            if self.config.input == "image":
                rgb = to_rgb8(array)
                return (*self.engine.compute_map(rgb), rgb)
            if array.ndim != 3 or array.dtype != np.float32:
                raise ImageError(
                    "not a descriptor image", f"expected a 32FC<D> or 16FC<D> image, got encoding {msg.encoding}"
                )
        except ValueError as exc:
            self.problems.report_error(exc)
            return None
        # No camera image: tracks/image is drawn on the descriptor colouring.
        return array, self._input_stride, None

    def process(self, msg: Image) -> None:
        result = self._descriptors_and_image(msg)
        if result is None:
            return
        descriptors, stride, rgb = result
        if not all_finite(descriptors):
            self.problems.report("non-finite descriptors", "descriptor image holds NaN/inf; frame skipped")
            return
        h, w = descriptors.shape[0] * stride, descriptors.shape[1] * stride
        with self._lock:
            if self._reset_requested:
                self.tracker.reset()
                self.drawer.reset()
                self.trails.reset()
                self._pubs["markers"].publish(delete_all_markers(msg.header))
                self._reset_requested = False
            queries, self._pending_queries = self._pending_queries, []
        inside = [(x, y) for x, y in queries if 0 <= x <= w - 1 and 0 <= y <= h - 1]
        if len(inside) < len(queries):
            self.problems.report("query outside image", f"{len(queries) - len(inside)} query point(s) outside {w}x{h}")
        # Existing tracks move into this frame first; new queries start here (in this frame's pixels).
        if self.tracker.num_tracks or not inside:
            self.tracker.update(descriptors, stride=stride)
        if inside:
            self.tracker.add_queries(descriptors, np.array(inside, np.float32), stride=stride)
        frame = self.tracker.frame()
        self._pubs["tracks"].publish(tracks_to_pointcloud2(frame, msg.header))
        if self._pubs["markers"].get_subscription_count():
            self._pubs["markers"].publish(
                tracks_to_markers(frame, msg.header, self.config.marker_pixel_scale, self.config.marker_labels)
            )
        self._publish_image_overlays(frame, msg.header)
        if self._pubs["image"].get_subscription_count():
            canvas = rgb if rgb is not None else self._descriptor_canvas(descriptors, stride)
            annotated = numpy_to_image(self.drawer.draw(canvas, frame), "bgr8")
            annotated.header = msg.header
            self._pubs["image"].publish(annotated)

    def _descriptor_canvas(self, descriptors: np.ndarray, stride: int) -> np.ndarray:
        """The descriptors' colouring on the pixel grid the tracks are in (each cell a stride x stride block)."""
        colours = self.colorizer(descriptors)
        return colours if stride == 1 else np.repeat(np.repeat(colours, stride, axis=0), stride, axis=1)

    def _publish_image_overlays(self, frame: TrackFrame, header: Any) -> None:
        """tracks/image_marker and tracks/annotations, when enabled and subscribed (the trails follow every frame)."""
        marker = self._pubs.get("image_marker")
        if marker is not None and marker.get_subscription_count():
            marker.publish(tracks_to_image_marker(frame, header))
        annotations = self._pubs.get("annotations")
        if annotations is not None:
            trails = self.trails.update(frame)
            if annotations.get_subscription_count():
                annotations.publish(tracks_to_image_annotations(frame, header.stamp, trails, self.config.marker_labels))


def main(args: list[str] | None = None) -> None:
    run_node(TrackerNode, args)


if __name__ == "__main__":
    main()
