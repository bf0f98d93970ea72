"""DescriptorModelNode: a FrameWorkerNode that runs a descriptor network and can swap it for another while running.

The network of ``model_dir`` (DescriptorSourceConfig) is loaded on activate. ``model_dir`` is a live parameter: set
it (`ros2 param set`) or call ``~/load_model`` (rcl_interfaces/srv/SetParameters with the one parameter
``model_dir``, a string; it goes through the same parameter callback). The folder's model.yaml is read at once: a
missing or invalid folder, or a model the node refuses (``refuse_model``), is refused in the answer and model_dir
keeps its value. Otherwise the answer says that loading started, and a background thread loads the checkpoint and
checks it with one small inference (finite descriptors of the right size); the frame worker then swaps it in
between two frames, the subscriptions untouched. A load that fails there logs one error, keeps the model in use and
sets model_dir back to it. The outcome is logged and shown on /diagnostics: ``model`` (fingerprint of the network in
use) and ``model loads failed`` (a count: the status warns when it grows).

Subclasses say whether their configuration runs a network (``runs_model``), may refuse a model of another descriptor
space (``refuse_model``: the SLAM while it has a map) and react to a new one (``model_swapped``: the tracker resets
its tracks when the descriptor space changed).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter

from dense_descriptors_ros.config import ConfigError
from dense_descriptors_ros.model.descriptor_source import (
    DescriptorSourceConfig,
    check_engine,
    free_device_memory,
    model_fingerprint,
    open_engine,
)
from dense_descriptors_ros.model.engine import DescriptorEngine
from dense_descriptors_ros.nodes.configured_node import one_line
from dense_descriptors_ros.nodes.frame_worker_node import FrameWorkerNode

LOAD_MODEL_USAGE = "~/load_model takes one parameter: model_dir, a string (a checkpoint folder, '' or 'untrained')"


class DescriptorModelNode(FrameWorkerNode):
    LIVE_PARAMETERS = FrameWorkerNode.LIVE_PARAMETERS | {"model_dir"}

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.engine: DescriptorEngine | None = None
        self._in_use: tuple[str, str] | None = None  # (model_dir, fingerprint) of the last network loaded
        self._loading: str | None = None  # model_dir of the load in progress
        self._load_generation = 0  # a load begun before a deactivate is not swapped in after it
        self._loads_started = 0
        self.failed_model_loads = 0
        self.create_service(SetParameters, "~/load_model", self._on_load_model)

    # --- hooks for subclasses --------------------------------------------------------------------------------
    def runs_model(self, config: Any) -> bool:
        """Whether ``config`` runs a descriptor network in this node."""
        return True

    def refuse_model(self, fingerprint: str) -> str | None:
        """Why a network of descriptor space ``fingerprint`` cannot replace the one in use now (None: it can)."""
        return None

    def model_swapped(self, old: str, new: str) -> None:
        """The network of descriptor space ``new`` replaced one of ``old`` (on the frame worker, between frames)."""

    # --- the network -----------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """The descriptor space of the network in use (while none is loaded: of the configured one)."""
        if self.engine is not None and self._in_use is not None:
            return self._in_use[1]
        return model_fingerprint(self.config)

    def check_config(self) -> None:
        if self.runs_model(self.config):
            self.config.check_model()

    def acquire(self) -> None:
        if not self.runs_model(self.config):
            return
        self.engine = open_engine(self.config, self.get_logger())
        previous = self._in_use[1] if self._in_use is not None else None
        self._in_use = (self.config.model_dir, model_fingerprint(self.config))
        if previous is not None and previous != self._in_use[1]:  # model_dir was set while the node was inactive
            self.model_swapped(previous, self._in_use[1])

    def release_resources(self) -> None:
        self._load_generation += 1
        self._loading = None
        self.engine = None
        free_device_memory()

    def diagnostic_values(self) -> dict[str, Any]:
        values = super().diagnostic_values()
        if self.config is not None and self.runs_model(self.config):
            values.update({"model": self.fingerprint, "model loads failed": self.failed_model_loads})
        return values

    # --- swapping it -----------------------------------------------------------------------------------------
    def check_live_parameters(self, config: Any, names: set[str]) -> None:
        super().check_live_parameters(config, names)
        if "model_dir" not in names:
            return
        try:
            if not self.runs_model(config):
                raise ValueError("this node runs no descriptor network with its configuration (see input/features)")
            if self._loading is not None:
                raise ValueError(f"{self._loading!r} is still loading; set model_dir again once it is in use")
            config.check_model()
            reason = self.refuse_model(model_fingerprint(config))
            if reason:
                raise ValueError(reason)
        except ValueError as exc:
            message = f"model_dir {config.model_dir!r} refused, the model in use is kept: {one_line(exc)}"
            self.get_logger().error(message)
            raise ConfigError(message) from None

    def apply_live_parameters(self, names: set[str]) -> None:
        super().apply_live_parameters(names)
        if "model_dir" in names and self.engine is not None:  # inactive: activation loads it
            self._start_load(copy.copy(self.config))

    def _start_load(self, source: DescriptorSourceConfig) -> None:
        fingerprint = model_fingerprint(source)
        if self._in_use == (source.model_dir, fingerprint):  # e.g. set back after a failed load
            return
        self._loading = source.model_dir
        self._loads_started += 1
        args = (source, fingerprint, self._load_generation)
        threading.Thread(target=self._load, args=args, name=f"{self.get_name()}-model-load", daemon=True).start()

    def _load(self, source: DescriptorSourceConfig, fingerprint: str, generation: int) -> None:
        """Background thread: load and check the network, then hand the swap to the frame worker."""
        started = time.monotonic()
        try:
            engine = open_engine(source, self.get_logger())
            check_engine(engine, source.model_dir)
        except Exception as exc:  # whatever the checkpoint does, the node keeps running its model
            self._load_failed(source.model_dir, one_line(exc), generation)
            return
        seconds = time.monotonic() - started

        def swap() -> None:
            self._swap(engine, source.model_dir, fingerprint, generation, seconds)

        if not self.worker.run_between_frames(swap) and generation == self._load_generation:
            self._loading = None  # the worker stopped: the next activation loads model_dir

    def _swap(
        self, engine: DescriptorEngine, model_dir: str, fingerprint: str, generation: int, seconds: float
    ) -> None:
        if generation != self._load_generation:
            return
        reason = self.refuse_model(fingerprint)  # checked again: e.g. the SLAM may have started a map meanwhile
        if reason:
            self._load_failed(model_dir, reason, generation)
            return
        previous = self.fingerprint
        self.engine, self._in_use = engine, (model_dir, fingerprint)
        free_device_memory()
        self.get_logger().info(
            f"model {model_dir!r} (fingerprint {fingerprint}, D {engine.descriptor_dim}) in use from the next frame; "
            f"loaded and checked in {seconds:.1f} s"
        )
        if previous != fingerprint:
            self.model_swapped(previous, fingerprint)
        self._loading = None  # last: a new load may start once this one is complete

    def _load_failed(self, model_dir: str, reason: str, generation: int) -> None:
        if generation != self._load_generation:
            return
        self.failed_model_loads += 1
        self._loading = None
        kept, fingerprint = self._in_use
        self.get_logger().error(
            f"model {model_dir!r} not loaded: {reason}; still running {kept!r} (fingerprint {fingerprint}), "
            "model_dir set back to it"
        )
        self.set_parameters([Parameter("model_dir", value=kept)])

    def _on_load_model(
        self, request: SetParameters.Request, response: SetParameters.Response
    ) -> SetParameters.Response:
        params = [Parameter.from_parameter_msg(p) for p in request.parameters]
        if [p.name for p in params] != ["model_dir"] or not isinstance(params[0].value, str):
            response.results = [SetParametersResult(successful=False, reason=LOAD_MODEL_USAGE)]
            return response
        loads_before = self._loads_started
        (result,) = self.set_parameters(params)  # the parameter callback checks it and starts the load
        if result.successful:
            model_dir = params[0].value
            if self._loads_started > loads_before:
                result.reason = (
                    f"loading {model_dir!r} started; the outcome is logged and shown as 'model' on /diagnostics"
                )
            elif self.engine is None:
                result.reason = f"model_dir set to {model_dir!r}: the node loads it when it is activated"
            else:
                result.reason = f"{model_dir!r} is already in use"
        response.results = [result]
        return response
