"""Descriptor node on a camera: ros2 launch dense_descriptors_ros descriptors.launch.py image:=/camera/image_raw"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dense_descriptors_ros.io.fastdds_profile import large_messages_env


def generate_launch_description():
    share = get_package_share_directory("dense_descriptors_ros")
    # Descriptor messages are MBs: the package's Fast DDS profile sends them through shared memory (unless the user
    # exported a profile of their own).
    transport = large_messages_env(os.path.join(share, "config"))
    return LaunchDescription(
        [
            DeclareLaunchArgument("image", default_value="/camera/image_raw", description="input image topic"),
            DeclareLaunchArgument("model_dir", default_value="", description="checkpoint folder"),
            DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "descriptors.yaml"),
                description="parameter file",
            ),
            Node(
                package="dense_descriptors_ros",
                executable="descriptor_node",
                additional_env=transport,
                name="descriptor_node",
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"model_dir": LaunchConfiguration("model_dir"), "device": LaunchConfiguration("device")},
                ],
                remappings=[("image", LaunchConfiguration("image"))],
            ),
        ]
    )
