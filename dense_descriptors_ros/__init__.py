"""dense_descriptors_ros: self-supervised dense visual descriptors from RGB video, with ROS 2 nodes."""

__version__ = "0.1.0"
