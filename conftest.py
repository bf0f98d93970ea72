"""Fixtures shared by test/ and benchmarks/: a real rclpy graph in this process, what its nodes show through public
interfaces (lifecycle state, publishers), and the shared data sets."""

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

# Two cores: keep torch from oversubscribing them when tests run beside other work.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip on a machine without CUDA (scripts/gpu_check.sh runs them with ``-m cuda``)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test on one torch thread (results that must not depend on thread scheduling, e.g. training)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ros() -> Iterator:
    """A real rclpy context with a spinning executor: nodes/in_process_graph.py's InProcessGraph.

    Tests that use it open DDS traffic: run them inside a private network namespace (scripts/run_tests.sh does).
    """
    from dense_descriptors_ros.nodes.in_process_graph import InProcessGraph

    with InProcessGraph() as graph:
        yield graph


@pytest.fixture
def lifecycle_state(ros) -> Callable:
    """``lifecycle_state(node)``: the label of a lifecycle node's state as its ``~/get_state`` service reports it
    (what ``ros2 lifecycle get`` shows)."""
    from lifecycle_msgs.srv import GetState

    from dense_descriptors_ros.nodes.in_process_graph import wait_for

    asker = ros.node("lifecycle_state_client")
    clients = {}

    def state(node) -> str:
        service = f"{node.get_fully_qualified_name()}/get_state"
        if service not in clients:
            clients[service] = asker.create_client(GetState, service)
        client = clients[service]
        assert client.wait_for_service(timeout_sec=10), f"{service} not available"
        future = client.call_async(GetState.Request())
        assert wait_for(future.done, timeout=10), f"{service} did not answer"
        return future.result().current_state.label

    return state


@pytest.fixture
def node_publisher() -> Callable:
    """``node_publisher(node, topic)``: the node's publisher on ``topic`` (a relative name is resolved as the node
    resolves it), e.g. to wait until it has matched a subscriber (``get_subscription_count``)."""

    def find(node, topic: str):
        name = node.resolve_topic_name(topic)
        (publisher,) = (p for p in node.publishers if p.topic_name == name)
        return publisher

    return find


@pytest.fixture
def shared_dataset() -> Callable[[str], Path]:
    """``shared_dataset(name)``: the folder of a dataset of ../shared/data (or $DDR_DATA_DIR); skips when absent."""
    from dense_descriptors_ros.evaluation import real_datasets

    def find(name: str) -> Path:
        try:
            return real_datasets.dataset_dir(name)
        except real_datasets.DatasetMissing as err:
            pytest.skip(str(err))

    return find
