"""S-PTAM-style stereo SLAM on pluggable features (learned dense descriptors or ORB), free of ROS.

Entry point: :class:`dense_descriptors_ros.slam.stereo_slam.StereoSlam` (``process(stamp, left, right, left_desc,
right_desc) -> SlamResult``). Modules: features, stereo_matching, frame_tracker (tracking a frame against the local
map, with motion_model, projection_search, pose_optimisation and relocalisation), map, local_mapping (BA, culling,
loop closing in the mapping thread), loop_closure, the GTSAM back-end (gtsam_support, bundle_adjustment,
pose_graph, solver_process: its worker process), map_io. Poses and the stereo camera model are in
:mod:`dense_descriptors_ros.geometry`.
"""
