"""Point tracking on a camera, watched in rviz.

ros2 launch dense_descriptors_ros tracker.launch.py camera:=/camera image:=image_raw model_dir:=/path/to/checkpoint
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

from dense_descriptors_ros.io.fastdds_profile import large_messages_env


def generate_launch_description():
    share = get_package_share_directory("dense_descriptors_ros")
    # Descriptor messages are MBs: the package's Fast DDS profile sends them through shared memory (unless the user
    # exported a profile of their own).
    transport = large_messages_env(os.path.join(share, "config"))
    camera = LaunchConfiguration("camera")
    image = LaunchConfiguration("image")
    separate = LaunchConfiguration("start_descriptor_node")
    common = {"model_dir": LaunchConfiguration("model_dir"), "device": LaunchConfiguration("device")}
    return LaunchDescription(
        [
            DeclareLaunchArgument("camera", default_value="/camera", description="camera namespace"),
            DeclareLaunchArgument("image", default_value="image_raw", description="image topic in the namespace"),
            DeclareLaunchArgument("model_dir", default_value="", description="checkpoint folder"),
            DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
            DeclareLaunchArgument("use_rviz", default_value="true", description="start rviz2 with tracker.rviz"),
            DeclareLaunchArgument(
                "start_descriptor_node",
                default_value="false",
                description="run the network in a separate descriptor_node (else in-process in tracker_node)",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "tracker.yaml"),
                description="tracker parameter file",
            ),
            Node(
                package="dense_descriptors_ros",
                executable="descriptor_node",
                additional_env=transport,
                name="descriptor_node",
                namespace=camera,
                output="screen",
                condition=IfCondition(separate),
                parameters=[os.path.join(share, "config", "descriptors.yaml"), common],
                remappings=[("image", image)],
            ),
            Node(
                package="dense_descriptors_ros",
                executable="tracker_node",
                additional_env=transport,
                name="tracker_node",
                namespace=camera,
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    common,
                    {
                        "input": PythonExpression(["'descriptors' if '", separate, "' == 'true' else 'image'"]),
                        # Descriptor images are MBs (2.5 MB at 640x480, more with max_output_side): only a reliable,
                        # depth-1 subscription gets them.
                        "descriptors_qos": "reliable",
                    },
                ],
                remappings=[("image", image)],
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", os.path.join(share, "config", "rviz", "tracker.rviz")],
                condition=IfCondition(LaunchConfiguration("use_rviz")),
            ),
        ]
    )
