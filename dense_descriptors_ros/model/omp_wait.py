"""OpenMP's wait policy for PyTorch, which only reads it once: from the environment, when torch is first imported.

``OMP_WAIT_POLICY=PASSIVE`` makes an idle OpenMP thread sleep at once; the default (active) lets it spin for a
while first, which on cores shared with other processes costs more than it saves (2-thread torch ran 5-15x slower
with a busy neighbour process, issue 15). The entry points (nodes/node_main.py, cli/main.py) call
:func:`set_omp_wait_policy` with the parameter or option before anything imports torch. This module imports no torch.
"""

from __future__ import annotations

import logging
import os
import sys

OMP_WAIT_POLICIES = ("passive", "active")
DEFAULT_OMP_WAIT_POLICY = "passive"  # a robot shares its cores with other nodes
log = logging.getLogger(__name__)


def set_omp_wait_policy(policy: str | None) -> None:
    """Put ``policy`` into OMP_WAIT_POLICY for torch to read when it is imported; ``None`` (not given) keeps a policy
    already set in the environment, else sets the passive default. Too late once torch is imported: says so."""
    if policy is not None and policy not in OMP_WAIT_POLICIES:
        raise ValueError(f"omp_wait_policy {policy!r} is not one of {list(OMP_WAIT_POLICIES)}")
    if "torch" in sys.modules:
        if policy is not None and policy != torch_omp_wait_policy():
            log.warning(f"torch is already imported: its OpenMP threads keep OMP_WAIT_POLICY {torch_omp_wait_policy()}")
        return
    if policy is None:
        os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_OMP_WAIT_POLICY.upper())
    else:
        os.environ["OMP_WAIT_POLICY"] = policy.upper()


def torch_omp_wait_policy() -> str:
    """The wait policy of torch's OpenMP threads, as far as the environment tells (unset: OpenMP spins, 'active')."""
    return "passive" if os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive" else "active"
