"""S-PTAM-style stereo SLAM on pluggable features (learned dense descriptors or ORB), free of ROS.

Entry point: :class:`dense_descriptors_ros.slam.stereo_slam.StereoSlam` (``process(stamp, left, right, left_desc,
right_desc) -> SlamResult``). Modules: geometry (SE(3), stereo camera), features, stereo_matching, tracking,
bundle_adjustment, map, local_mapping, loop_closure, map_io, slam_command
(`dense-descriptors slam`).
"""
