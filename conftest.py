"""Fixtures shared by test/ and benchmarks/: a real rclpy graph in this process, what its nodes show through public
interfaces (lifecycle state, publishers), node executables started as processes, and the shared data sets."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

# Two cores: keep torch from oversubscribing them when tests run beside other work.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True, scope="session")
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """CPU runtimes cache the graphs of networks without a checkpoint folder here, not in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("runtime_cache")
    os.environ["DDR_CACHE_DIR"] = str(folder)
    yield folder
    os.environ.pop("DDR_CACHE_DIR", None)


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


def ros_argument(value: Any) -> str:
    """A parameter value as `--ros-args -p name:=value` takes it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ros_argument(v) for v in value) + "]"
    return str(value)


class NodeProcess:
    """One node executable running as a child process; its stdout and stderr go to ``log_path``."""

    def __init__(self, command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.interrupted = False
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def interrupt(self) -> None:
        """Ctrl-C, as ros2 launch sends, so the node unlinks its Fast DDS shared-memory segment on the way out (a
        killed process leaves it in /dev/shm)."""
        if self.alive() and not self.interrupted:
            self.process.send_signal(signal.SIGINT)
            self.interrupted = True  # once: a second Ctrl-C would cut the shutdown short

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt, then kill if the process has not exited within ``timeout`` seconds."""
        self.interrupt()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def large_messages_env() -> dict[str, str]:
    """The environment the launch files give the package's nodes: config/fastdds_large_messages.xml."""
    from dense_descriptors_ros.io.fastdds_profile import large_messages_env as profile_env

    return profile_env(REPO / "config", environ={})


@pytest.fixture
def fastdds_segments() -> Callable[[int], dict[str, int]]:
    """``fastdds_segments(pid)``: the Fast DDS shared-memory segments process ``pid`` has mapped, path -> bytes
    (/dev/shm/fastrtps_*, not its port queues or lock files)."""

    def segments(pid: int) -> dict[str, int]:
        found = {}
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split()
            path = fields[5] if len(fields) >= 6 else ""
            if path.startswith("/dev/shm/fastrtps_") and not path.endswith("_el") and "_port" not in path:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                found[path] = end - start
        return found

    return segments


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """``start_node(executable, params, name=None, params_file=None, wrapper=(), env=None)``: run
    ``dense_descriptors_ros.nodes.<executable>`` with a parameter file and ``--ros-args -p`` parameters (``name``
    renames the node); ``wrapper`` is a command prefix (e.g. unshare), ``env`` extra environment variables.
    Processes still running at the end are stopped (NodeProcess.stop)."""
    started: list[NodeProcess] = []

    def start(
        executable: str,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        params_file: Path | None = None,
        wrapper: tuple = (),
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        command = [*wrapper, sys.executable, "-m", f"dense_descriptors_ros.nodes.{executable}", "--ros-args"]
        if name:
            command += ["-r", f"__node:={name}"]
        if params_file:
            command += ["--params-file", str(params_file)]
        for key, value in (params or {}).items():
            command += ["-p", f"{key}:={ros_argument(value)}"]
        process = NodeProcess(command, tmp_path / f"{name or executable}.log", tmp_path, env)
        started.append(process)
        return process

    yield start
    for process in started:  # all at once, then wait for each
        process.interrupt()
    for process in started:
        process.stop()
