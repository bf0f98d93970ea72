"""A node's omp_wait_policy is read from its command line before torch is imported (model/omp_wait.py)."""

from dense_descriptors_ros.nodes.node_main import omp_wait_policy_argument


def test_wait_policy_from_parameters_and_parameter_files(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    max_side: 320\n    omp_wait_policy: active\n")
    assert omp_wait_policy_argument(["node"]) is None
    assert omp_wait_policy_argument(["node", "--ros-args", "-p", "max_side:=320"]) is None
    assert omp_wait_policy_argument(["node", "--ros-args", "-p", "omp_wait_policy:=active"]) == "active"
    assert omp_wait_policy_argument(["node", "--ros-args", "--param", "tracker_node:omp_wait_policy:=active"]) == (
        "active"
    )
    assert omp_wait_policy_argument(["node", "--ros-args", "--params-file", str(params)]) == "active"
    last_wins = ["node", "--ros-args", "--params-file", str(params), "-p", "omp_wait_policy:=passive"]
    assert omp_wait_policy_argument(last_wins) == "passive"
    assert omp_wait_policy_argument(["node", "--ros-args", "--params-file", str(tmp_path / "missing.yaml")]) is None
    assert omp_wait_policy_argument(["omp_wait_policy:=active"]) is None  # not a ROS argument
