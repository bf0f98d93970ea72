"""Record a camera for training: ros2 launch dense_descriptors_ros record.launch.py image:=/camera/image_raw

Stop with Ctrl-C (the bag is closed and the frame counts logged) or call /recorder_node/stop; then
``dense-descriptors train --data recordings/<bag>``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("dense_descriptors_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
            DeclareLaunchArgument("camera_info", default_value="/camera/camera_info", description="camera info topic"),
            DeclareLaunchArgument("output_dir", default_value="recordings", description="folder the bags go to"),
            DeclareLaunchArgument("storage", default_value="mcap", description="mcap or sqlite3"),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "recorder.yaml"),
                description="parameter file",
            ),
            Node(
                package="dense_descriptors_ros",
                executable="recorder_node",
                name="recorder_node",
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"output_dir": LaunchConfiguration("output_dir"), "storage": LaunchConfiguration("storage")},
                ],
                remappings=[
                    ("image", LaunchConfiguration("image")),
                    ("camera_info", LaunchConfiguration("camera_info")),
                ],
            ),
        ]
    )
