"""recorder_node: record a camera as rosbag2 (mcap or sqlite3) for self-supervised training.

The messages are written exactly as received (raw CDR from the subscription); only the frame selection decodes
them (see io/recording_policy.py: max rate, near-duplicate and blur skips, each counted and logged at stop).
Bags are ``<output_dir>/<prefix>_<YYYYmmdd-HHMMSS>_<NNN>``, NNN counting splits by size, duration or ``~/split``;
each is a valid ``dense-descriptors train --data`` input. Everything is flushed every ``flush_period`` seconds, so
a recorder killed with SIGKILL leaves a bag that reads back with all but the last ``flush_period`` of frames.

Lifecycle: parameters are read on configure, subscriptions made on activate (recording starts there when
``record_on_start``), the bag closed on deactivate. By default the node drives itself to active (``autostart``).
Topics (relative, remap them): in ``image`` (sensor_msgs/Image, or CompressedImage with ``compressed``) and
``camera_info``. Services ``~/start``, ``~/stop``, ``~/split`` (std_srvs/Trigger). Publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from dense_descriptors_ros.io.bag_recorder import BagRecorder, RecordingStopped
from dense_descriptors_ros.io.recording_policy import RecordingConfig, Verdict
from dense_descriptors_ros.nodes.configured_node import ConfiguredLifecycleNode, NodeConfig
from dense_descriptors_ros.nodes.input_problems import InputProblems
from dense_descriptors_ros.nodes.node_main import run_node
from dense_descriptors_ros.nodes.qos_profiles import QOS_NAMES, qos_by_name


@dataclass
class RecorderNodeConfig(NodeConfig, RecordingConfig):
    image_qos: str = field(
        default="reliable",
        metadata={
            "help": "QoS of the image and camera_info subscriptions; reliable (the default) loses no frame of a "
            "reliable camera, sensor_data is needed for a best-effort one (and loses frames under load)",
            "choices": QOS_NAMES,
        },
    )
    record_on_start: bool = field(default=True, metadata={"help": "start recording as soon as the node is active"})
    queue_depth: int = field(
        default=10, metadata={"help": "subscription queue depth (frames waiting to be recorded)", "range": (1, 1000)}
    )


class RecorderNode(ConfiguredLifecycleNode):
    CONFIG = RecorderNodeConfig

    def __init__(self, node_name: str = "recorder_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.recorder: BagRecorder | None = None
        self.problems = InputProblems(self.get_logger())
        self.recording_errors = 0  # recordings stopped by a full disk or a failed write
        self._flush_timer = None
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(Trigger, "~/split", self._on_split)

    # --- lifecycle hooks -------------------------------------------------------------------------------------
    def make_subscriptions(self) -> list:
        config = self.config
        qos = qos_by_name(config.image_qos, depth=config.queue_depth)
        image_sub = self.create_subscription(
            CompressedImage if config.compressed else Image,
            "image",
            self._on_image,
            qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            raw=True,
        )
        subs = [image_sub]
        info_topic = None
        if config.record_camera_info:
            info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos, raw=True)
            subs.append(info_sub)
            info_topic = info_sub.topic_name
        self.recorder = BagRecorder(config, image_sub.topic_name, info_topic)
        # Steady clock: flushing is about wall time lost in a crash, also when use_sim_time pauses ROS time.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._flush_timer = self.create_timer(config.flush_period, self._flush, clock=steady)
        return subs

    def start(self) -> None:
        if self.config.record_on_start:
            try:
                self._start_recording()
            except (OSError, ValueError) as exc:
                raise OSError(f"cannot start recording: {exc}") from exc

    def stop(self) -> None:
        """Close the bag (its metadata and counts are written while ROS is still up)."""
        self._stop_recording()

    def release_resources(self) -> None:
        if self._flush_timer is not None:
            self.destroy_timer(self._flush_timer)
            self._flush_timer = None

    def diagnostic_values(self) -> dict[str, Any]:
        if self.recorder is None:
            return {"state": "not active"}
        counts = self.recorder.counts
        return {
            "state": f"recording to {self.recorder.current_bag}" if self.recorder.recording else "not recording",
            "received": counts.received,
            "kept": counts.kept,
            "lost": self.recorder.gaps.lost,
            "skipped over max_rate": counts.skipped_rate,
            "skipped near-duplicate": counts.skipped_duplicate,
            "skipped blurry": counts.skipped_blur,
            "bad input": counts.undecodable,
            "recording errors": self.recording_errors,
        }

    # --- recording -------------------------------------------------------------------------------------------
    def _start_recording(self) -> str:
        path = self.recorder.start()
        self.get_logger().info(f"recording {self.recorder.image_topic} to {path}")
        return str(path)

    def _stop_recording(self) -> str | None:
        if self.recorder is None or not self.recorder.recording:
            return None
        try:
            self.recorder.stop()
        except RecordingStopped as exc:
            self._recording_failed(exc)
        summary = self.recorder.summary()
        self.get_logger().info(f"stopped recording: {summary}")
        return summary

    def _recording_failed(self, exc: RecordingStopped) -> None:
        """The bag is closed and the recorder idle (``~/start`` begins a new bag): say so once."""
        self.recording_errors += 1
        self.get_logger().error(f"{exc}; {self.recorder.counts.summary()}")

    def _flush(self) -> None:
        try:
            self.recorder.flush()
        except RecordingStopped as exc:
            self._recording_failed(exc)

    def _on_image(self, raw: bytes) -> None:
        if self.recorder is None:
            return
        try:
            verdict = self.recorder.offer_image(raw, self.get_clock().now().nanoseconds)
        except RecordingStopped as exc:
            self._recording_failed(exc)
            return
        if verdict is Verdict.UNDECODABLE:
            self.problems.report("undecodable", f"frame not recorded: {self.recorder.last_problem}")

    def _on_camera_info(self, raw: bytes) -> None:
        if self.recorder is not None:
            self.recorder.offer_camera_info(raw, self.get_clock().now().nanoseconds)

    # --- services --------------------------------------------------------------------------------------------
    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.recorder is None or not self._subs:
            response.success, response.message = False, "the node is not active; activate it first"
        elif self.recorder.recording:
            response.success, response.message = False, f"already recording to {self.recorder.current_bag}"
        else:
            try:
                response.success, response.message = True, self._start_recording()
            except (OSError, ValueError) as exc:
                response.success, response.message = False, f"cannot start recording: {exc}"
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        summary = self._stop_recording()
        response.success = summary is not None
        response.message = summary if summary is not None else "not recording"
        return response

    def _on_split(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.recorder is None or not self.recorder.recording:
            response.success, response.message = False, "not recording"
        else:
            try:
                response.success, response.message = True, str(self.recorder.split())
            except RecordingStopped as exc:
                self._recording_failed(exc)
                response.success, response.message = False, str(exc)
        return response


def main(args: list[str] | None = None) -> None:
    run_node(RecorderNode, args)


if __name__ == "__main__":
    main()
