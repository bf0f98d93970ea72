"""rclpy nodes: descriptor, tracker, SLAM, recorder (thin: parameters, QoS, topics).

Importing this package comes before any node module imports torch, so it is where a node started from the command
line sets OpenMP's wait policy from its ``omp_wait_policy`` parameter (or the passive default): torch reads the
policy only when it is imported (model/omp_wait.py).
"""

import sys

from dense_descriptors_ros.model.omp_wait import OMP_WAIT_POLICIES, set_omp_wait_policy
from dense_descriptors_ros.nodes.node_main import omp_wait_policy_argument

_policy = omp_wait_policy_argument(sys.argv)
set_omp_wait_policy(_policy if _policy in OMP_WAIT_POLICIES else None)  # an invalid value: the node rejects it
