"""slam_node: S-PTAM-style stereo SLAM on learned dense descriptors (or ORB), papers/003 section 5.4.

Topics: in ``left/image_rect``, ``right/image_rect``, ``left/camera_info``, ``right/camera_info`` (rectified
pair; intrinsics and baseline come from the CameraInfo P matrices, the right one's P[0,3] = -fx * baseline).
Out ``odometry`` (nav_msgs/Odometry in odom, with the pose covariance), ``pose`` (PoseWithCovarianceStamped in
map), ``path`` (nav_msgs/Path), ``map_points`` (PointCloud2, transient local, throttled), ``tracked_features``
(bgr8), ``status`` (std_msgs/String, JSON); TF map -> odom -> base_link through tf2_ros when it is importable.
Services ``~/reset``, ``~/save_map``, ``~/load_map`` (std_srvs/Trigger, folder from the ``map_dir`` parameter),
``~/load_model`` (swaps the descriptor network while running, see descriptor_model_node.py: a network of another
descriptor space is refused while there is a map, or in localization mode; with no map yet it is taken).

``mode``: ``mapping`` builds a map (and can continue one loaded with ``~/load_map``); ``localization`` loads the map
in ``map_dir`` (checked on configure: a map of another descriptor model or feature type fails the transition),
relocalises in it with the global descriptor and PnP, and tracks without adding keyframes.

Poses: SLAM estimates the left camera's optical frame (z forward, x right, y down) in the map frame (the first
camera pose of the mapping run). With ``camera_is_optical`` (default) the node re-expresses that in REP-103 axes
(x forward, z up) so ``base_link`` moves like a robot body whose camera looks forward. Relocalisation and loop
corrections move map -> odom, so odom -> base_link stays continuous (REP-105, MapOdomSplit). The messages are built
in nodes/messages/ (odometry.py, slam.py, pointcloud.py).
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from dense_descriptors_ros.geometry.camera import (
    R_BODY_OPTICAL,
    StereoCamera,
    optical_to_body_points,
    optical_to_body_pose,
)
from dense_descriptors_ros.geometry.se3 import invert_pose
from dense_descriptors_ros.io.image_conversion import image_to_numpy, to_rgb8
from dense_descriptors_ros.model.descriptor_source import DescriptorSourceConfig
from dense_descriptors_ros.nodes.descriptor_model_node import DescriptorModelNode
from dense_descriptors_ros.nodes.frame_worker_node import FrameNodeConfig, stamp_seconds
from dense_descriptors_ros.nodes.messages.odometry import (
    MapOdomSplit,
    append_to_path,
    covariance_or_untracked,
    odometry_message,
    odometry_transforms,
    pose_with_covariance_message,
    rotate_pose_covariance,
)
from dense_descriptors_ros.nodes.messages.pointcloud import xyz_to_pointcloud2
from dense_descriptors_ros.nodes.messages.slam import status_message, tracked_features_image
from dense_descriptors_ros.nodes.node_main import run_node
from dense_descriptors_ros.nodes.qos_profiles import RELIABLE_OUT, TRANSIENT_LOCAL_OUT, qos_by_name
from dense_descriptors_ros.nodes.stereo_sync import StereoSynchronizer
from dense_descriptors_ros.slam.gtsam_support import require_gtsam
from dense_descriptors_ros.slam.map_io import check_map
from dense_descriptors_ros.slam.solver_process import shared_worker
from dense_descriptors_ros.slam.stereo_slam import SlamResult, StereoSlam, StereoSlamConfig, TrackingState

try:  # pragma: no cover - only on a machine with a ROS install
    from tf2_ros import TransformBroadcaster
except ImportError:
    TransformBroadcaster = None


UNMATCHED_LOG_EVERY = 100  # unmatched stereo images between two warnings


SLAM_MODES = ("mapping", "localization")


@dataclass
class SlamNodeConfig(FrameNodeConfig, DescriptorSourceConfig):
    mode: str = field(
        default="mapping",
        metadata={
            "help": "mapping: build a map; localization: track in the map of map_dir without changing it",
            "choices": SLAM_MODES,
        },
    )
    slam: StereoSlamConfig = field(default_factory=StereoSlamConfig)
    map_frame: str = field(default="map", metadata={"help": "global frame of the map"})
    odom_frame: str = field(
        default="odom", metadata={"help": "continuous odometry frame; map -> odom takes relocalisation jumps"}
    )
    base_frame: str = field(default="base_link", metadata={"help": "the moving body frame published in TF"})
    publish_tf: bool = field(default=True, metadata={"help": "publish map -> odom -> base_link (needs tf2_ros)"})
    camera_is_optical: bool = field(
        default=True, metadata={"help": "re-express optical-frame poses in REP-103 body axes (x forward, z up)"}
    )
    sync_slop: float = field(
        default=0.005, metadata={"help": "max stamp difference (s) of a left/right pair", "range": (0.0, 1.0)}
    )
    sync_queue_size: int = field(default=10, metadata={"help": "images kept per side for pairing", "range": (1, 100)})
    map_points_period: float = field(
        default=1.0, metadata={"help": "seconds between map_points clouds (throttle)", "range": (0.0, 3600.0)}
    )
    max_path_length: int = field(default=10000, metadata={"help": "poses kept in the path topic", "range": (1, 10**7)})
    map_dir: str = field(
        default="slam_map", metadata={"help": "map folder of ~/save_map, ~/load_map and localization mode"}
    )


class SlamNode(DescriptorModelNode):
    CONFIG = SlamNodeConfig
    LIVE_PARAMETERS = DescriptorModelNode.LIVE_PARAMETERS | {
        "map_dir",
        "map_points_period",
        "max_path_length",
        "sync_slop",
    }

    def __init__(self, node_name: str = "slam_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.slam: StereoSlam | None = None
        self.infos: dict[str, CameraInfo] = {}
        self.sync: Any = None
        self._lock = threading.Lock()  # the SLAM object: worker thread vs. services
        self._path = Path()
        self._last_cloud_time = -np.inf
        self._tf = None
        self._last_stamp: float | None = None
        self.time_jumps = 0  # times the stamps went back and the map was reset
        self._odom = MapOdomSplit()
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/save_map", self._on_save_map)
        self.create_service(Trigger, "~/load_map", self._on_load_map)

    @property
    def map_to_odom(self) -> np.ndarray:
        """The 4x4 map -> odom transform published in TF: the jumps of relocalisation and loop closure (REP-105)."""
        return self._odom.T_map_odom.copy()

    def check_config(self) -> None:
        super().check_config()
        if self.config.mode == "localization":
            try:
                check_map(self.config.map_dir, self._model_name(), self.config.slam.feature_type)
            except FileNotFoundError as exc:
                raise ValueError(f"mode localization needs a saved map in map_dir: {exc}") from exc

    def _model_name(self) -> str:
        """The id saved maps carry: the descriptor model's fingerprint, or the feature type (orb)."""
        slam_config = self.config.slam
        if not slam_config.needs_descriptor_image:
            return slam_config.feature_type
        return self.fingerprint

    def runs_model(self, config: SlamNodeConfig) -> bool:
        return config.slam.needs_descriptor_image

    def refuse_model(self, fingerprint: str) -> str | None:
        if fingerprint == self.fingerprint:
            return None
        if self.config.mode == "localization":
            return f"localization mode tracks in the map of {self.config.map_dir}, made with model {self.fingerprint}"
        slam = self.slam
        if slam is not None and slam.map is not None:
            return (
                f"the SLAM has a map made with model {self.fingerprint}; descriptors of model {fingerprint} cannot "
                "be matched to it (save it with ~/save_map and clear it with ~/reset first)"
            )
        return None

    def model_swapped(self, old: str, new: str) -> None:
        with self._lock:  # no map yet (refuse_model): the SLAM starts again with the new model's id
            if self.slam is not None:
                self.slam.close()
            self.slam = None

    def make_publishers(self) -> dict[str, Any]:
        if self.config.publish_tf:
            if TransformBroadcaster is None:
                self.get_logger().warning("tf2_ros is not importable: TF is not published (odometry and path are)")
            else:  # pragma: no cover - ROS install
                self._tf = TransformBroadcaster(self)
        return {
            "odometry": self.create_publisher(Odometry, "odometry", RELIABLE_OUT),
            "pose": self.create_publisher(PoseWithCovarianceStamped, "pose", RELIABLE_OUT),
            "path": self.create_publisher(Path, "path", RELIABLE_OUT),
            "map_points": self.create_publisher(PointCloud2, "map_points", TRANSIENT_LOCAL_OUT),
            "tracked_features": self.create_publisher(Image, "tracked_features", RELIABLE_OUT),
            "status": self.create_publisher(String, "status", RELIABLE_OUT),
        }

    def acquire(self) -> None:
        require_gtsam()  # GtsamMissingError (a RuntimeError) fails the activation with the install hint
        if self.config.mode == "mapping" and not self.config.slam.mapping.synchronous:
            shared_worker()  # start the mapping back-end's process before the first keyframe
        super().acquire()

    def make_subscriptions(self) -> list:
        qos = qos_by_name(self.config.image_qos)
        infos = [
            self.create_subscription(
                CameraInfo, f"{side}/camera_info", lambda m, side=side: self._on_info(side, m), qos
            )
            for side in ("left", "right")
        ]
        return self._image_subscriptions(qos) + infos

    def apply_live_parameters(self, names: set[str]) -> None:
        super().apply_live_parameters(names)
        if self.sync is not None:
            self.sync.slop = self.config.sync_slop

    def release_resources(self) -> None:
        with self._lock:
            if self.slam is not None:
                self.slam.close()
            self.slam = None
            self._last_stamp = None
        super().release_resources()

    def _image_subscriptions(self, qos: Any) -> list:
        """left/right image subscriptions feeding time-synchronised pairs to the worker (our synchroniser rather
        than message_filters': it counts the images that find no partner)."""
        cfg = self.config
        self.sync = StereoSynchronizer(
            lambda left, right: self.worker.put((left, right)), cfg.sync_slop, cfg.sync_queue_size
        )
        overrides = QoSOverridingOptions.with_default_policies()
        return [
            self.create_subscription(
                Image,
                f"{side}/image_rect",
                lambda m, side=side: self._on_image(side, m),
                qos,
                qos_overriding_options=overrides,
            )
            for side in ("left", "right")
        ]

    def diagnostic_values(self) -> dict[str, Any]:
        sync = self.sync
        pairs = {"stereo pairs": sync.pairs, "unmatched": sync.unmatched} if sync is not None else {}
        return {**super().diagnostic_values(), **pairs, "time jumps": self.time_jumps}

    # --- inputs and services ---------------------------------------------------------------------------------
    def _on_info(self, side: str, msg: CameraInfo) -> None:
        self.infos[side] = msg

    def _on_image(self, side: str, msg: Image) -> None:
        stamp = stamp_seconds(msg.header)
        if side == "left":
            self.count_stamp(msg.header)
            self.sync.add_left(stamp, msg)
            return
        before = self.sync.unmatched
        self.sync.add_right(stamp, msg)
        unmatched = self.sync.unmatched
        if unmatched > before and (before == 0 or before // UNMATCHED_LOG_EVERY < unmatched // UNMATCHED_LOG_EVERY):
            self.get_logger().warning(
                f"{unmatched} stereo image(s) found no partner within sync_slop {self.sync.slop} s "
                f"({self.sync.pairs} pair(s) so far): check that left and right stamps match, or raise sync_slop"
            )

    def _trigger(self, response: Trigger.Response, action: Any, done: str) -> Trigger.Response:
        with self._lock:
            try:
                action()
                response.success, response.message = True, done
            except (ValueError, OSError) as exc:
                response.success, response.message = False, str(exc)
            except Exception as exc:  # e.g. a damaged map file: refuse, never take the node down
                response.success, response.message = False, f"{type(exc).__name__}: {exc}"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        def reset() -> None:
            if self.slam is not None:
                self.slam.reset()
            self._path = Path()
            self._last_stamp = None
            self._odom.reset()

        return self._trigger(response, reset, "map and trajectory cleared")

    def _on_save_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        def save() -> None:
            if self.slam is None:
                raise ValueError("no map yet: no stereo pair has been processed")
            self.slam.save_map(self.config.map_dir)

        return self._trigger(response, save, f"map saved to {self.config.map_dir}")

    def _on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        def load() -> None:
            if self.slam is None:
                raise ValueError("wait for camera_info and the first stereo pair before loading a map")
            try:
                self.slam.load_map(self.config.map_dir)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise ValueError(f"cannot load the map in {self.config.map_dir} (map.npz, map.yaml): {exc}") from None

        return self._trigger(response, load, f"map loaded from {self.config.map_dir}; relocalising")

    # --- work ------------------------------------------------------------------------------------------------
    def _make_slam(self) -> StereoSlam | None:
        if "left" not in self.infos or "right" not in self.infos:
            self.problems.report("no camera_info yet", "waiting for left/camera_info and right/camera_info")
            return None
        camera = StereoCamera.from_camera_infos(self.infos["left"], self.infos["right"])
        slam_config, name = self.config.slam, self._model_name()
        localization = self.config.mode == "localization"
        self.get_logger().info(
            f"stereo camera {camera.width}x{camera.height}, fx {camera.fx:.1f}, baseline {camera.baseline:.4f} m; "
            f"features: {slam_config.feature_type} ({name}); mode {self.config.mode}"
        )
        slam = StereoSlam(camera, slam_config, model_id=name, localization_only=localization)
        if localization:
            slam.load_map(self.config.map_dir)
            self.get_logger().info(f"localizing in the map of {self.config.map_dir}")
        return slam

    def process(self, pair: tuple[Image, Image]) -> None:
        left_msg, right_msg = pair
        try:
            left = to_rgb8(image_to_numpy(left_msg, self.config.max_input_pixels))
            right = to_rgb8(image_to_numpy(right_msg, self.config.max_input_pixels))
        except ValueError as exc:
            self.problems.report_error(exc)
            return
        with self._lock:
            if self.slam is None:
                try:
                    self.slam = self._make_slam()
                except ValueError as exc:
                    self.problems.report("bad camera_info", str(exc))
                    return
                if self.slam is None:
                    return
            stamp = stamp_seconds(left_msg.header)
            if self._last_stamp is not None and stamp < self._last_stamp:
                self.time_jumps += 1
                self.get_logger().warning(
                    f"time went back from {self._last_stamp:.3f} to {stamp:.3f} s (a replayed bag or a restarted "
                    "camera?): the map and the trajectory start again"
                )
                self.slam.reset()
                self._path = Path()
            self._last_stamp = stamp
            descriptors = (None, None)
            if self.engine is not None:
                batch = self.engine.compute_batch([left, right])
                descriptors = (batch[0], batch[1])
            try:
                result = self.slam.process(stamp, left, right, *descriptors)
            except ValueError as exc:
                self.problems.report("frame rejected by SLAM", str(exc))
                return
            cloud_due = self._cloud_due()
            points = self.slam.map_points() if cloud_due else None
        self._publish(left_msg.header, left, result, points)

    def _cloud_due(self) -> bool:
        now = self.get_clock().now().nanoseconds * 1e-9
        if (
            self._pubs["map_points"].get_subscription_count()
            and now - self._last_cloud_time >= self.config.map_points_period
        ):
            self._last_cloud_time = now
            return True
        return False

    def _publish(self, header: Any, left: np.ndarray, result: SlamResult, points: np.ndarray | None) -> None:
        cfg = self.config
        status = status_message(result, self.problems.total, self.worker.counts.dropped, cfg.mode)
        if result.has_pose:
            odom = self._publish_pose(header, result)
            if self._tf is not None:  # pragma: no cover - ROS install
                self._tf.sendTransform(odometry_transforms(odom, cfg.map_frame, self._odom.T_map_odom))
        self._pubs["status"].publish(status)
        if self._pubs["tracked_features"].get_subscription_count():
            self._pubs["tracked_features"].publish(tracked_features_image(left, result, header))
        if points is not None:
            if cfg.camera_is_optical:
                points = optical_to_body_points(points)
            cloud_header = Header(stamp=header.stamp, frame_id=cfg.map_frame)
            self._pubs["map_points"].publish(xyz_to_pointcloud2(points, cloud_header))

    def _publish_pose(self, header: Any, result: SlamResult) -> Odometry:
        """pose (map), odometry (odom, continuous) and path of a frame the SLAM placed; returns the odometry."""
        cfg = self.config
        T_map_base, R_axes = result.T_world_cam, result.T_world_cam[:3, :3]
        if cfg.camera_is_optical:
            T_map_base, R_axes = optical_to_body_pose(T_map_base), R_BODY_OPTICAL @ R_axes
        covariance = covariance_or_untracked(result.covariance)
        if result.covariance is not None:  # body perturbation -> axes of the map frame
            covariance = rotate_pose_covariance(R_axes, covariance)
        jump = result.state == TrackingState.RELOCALIZED or result.loop_closure is not None
        T_odom_base = self._odom.update(T_map_base, jump)
        R_odom_map = invert_pose(self._odom.T_map_odom)[:3, :3]
        odom = odometry_message(
            T_odom_base, header.stamp, cfg.odom_frame, cfg.base_frame, rotate_pose_covariance(R_odom_map, covariance)
        )
        self._pubs["odometry"].publish(odom)
        pose = pose_with_covariance_message(T_map_base, covariance, header.stamp, cfg.map_frame)
        self._pubs["pose"].publish(pose)
        append_to_path(self._path, pose.pose.pose, header.stamp, cfg.map_frame, cfg.max_path_length)
        self._pubs["path"].publish(self._path)
        return odom


def main(args: list[str] | None = None) -> None:
    run_node(SlamNode, args)


if __name__ == "__main__":
    main()
