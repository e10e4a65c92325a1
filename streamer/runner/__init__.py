"""Operators, topologies and the one runner that executes them.

The public surface a user needs to write a pipeline and try it: the operator contract
(:class:`CpuOperator`, :class:`ModelOperator`, :class:`Source`, :data:`VECTOR`), the batch
policy, :class:`Topology` with its :class:`ModelVersion`, and :func:`run` (a local run, no
server). Planning (:mod:`.plan`), the runner (:mod:`.runner`) and the per-process plan cache
(:mod:`.plans`) are imported from their modules.
"""

from streamer.runner.local import LocalRun, run, run_local
from streamer.runner.operator import (
    VECTOR,
    BatchPolicy,
    BoundCpu,
    BoundModel,
    CpuOperator,
    LoadedModel,
    ModelOperator,
    Operator,
    Source,
    Vector,
    check_batch,
)
from streamer.runner.topology import ModelVersion, Topology, check_chain

__all__ = [
    "VECTOR",
    "BatchPolicy",
    "BoundCpu",
    "BoundModel",
    "CpuOperator",
    "LoadedModel",
    "LocalRun",
    "ModelOperator",
    "ModelVersion",
    "Operator",
    "Source",
    "Topology",
    "Vector",
    "check_batch",
    "check_chain",
    "run",
    "run_local",
]
