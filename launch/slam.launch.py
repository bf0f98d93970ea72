"""Stereo SLAM on learned dense descriptors, watched in rviz.

ros2 launch dense_descriptors_ros slam.launch.py stereo:=/stereo model_dir:=/path/to/checkpoint
Expects <stereo>/left/image_rect, <stereo>/right/image_rect and both camera_info topics (rectified pair).
Localise in a saved map instead of mapping: mode:=localization map_dir:=/path/to/map.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("dense_descriptors_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("stereo", default_value="/stereo", description="stereo camera namespace"),
            DeclareLaunchArgument("model_dir", default_value="", description="checkpoint folder (learned features)"),
            DeclareLaunchArgument("features", default_value="learned", description="learned or orb"),
            DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
            DeclareLaunchArgument("mode", default_value="mapping", description="mapping or localization"),
            DeclareLaunchArgument(
                "map_dir", default_value="slam_map", description="map folder (save_map, load_map, localization)"
            ),
            DeclareLaunchArgument("use_rviz", default_value="true", description="start rviz2 with slam.rviz"),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "slam.yaml"),
                description="SLAM parameter file",
            ),
            Node(
                package="dense_descriptors_ros",
                executable="slam_node",
                name="slam_node",
                namespace=LaunchConfiguration("stereo"),
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "model_dir": LaunchConfiguration("model_dir"),
                        "device": LaunchConfiguration("device"),
                        "slam.feature_type": LaunchConfiguration("features"),
                        "mode": LaunchConfiguration("mode"),
                        "map_dir": LaunchConfiguration("map_dir"),
                    },
                ],
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", os.path.join(share, "config", "rviz", "slam.rviz")],
                condition=IfCondition(LaunchConfiguration("use_rviz")),
            ),
        ]
    )
