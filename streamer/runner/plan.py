"""Planning: one model version of a topology, bound in this process and cut into segments.

Binding turns each declared operator into what runs (models load here). Planning groups the
bound stages into *segments* the runner schedules: consecutive CPU stages fused into one
segment (one task per item in the CPU pool), each model stage a segment of its own (batches
on its device). The plan also knows the length of the vectors it gives, so collections can be
created and query vectors checked before anything runs.

Before binding, neighbours that run faster together on the model's device are fused
(:meth:`~streamer.runner.operator.Operator.on_device`): on a GPU, JPEG decoding and the model's
resize and crop become one model stage there. Stage indices are those of the bound chain.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from streamer.core.errors import ConfigError, StageError
from streamer.runner.context import Context
from streamer.runner.operator import BoundCpu, BoundModel, ModelOperator, Operator, Source
from streamer.runner.topology import Topology, check_chain

__all__ = ["Plan", "Segment", "Stage", "bind"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stage:
    """One bound stage: its place in the chain and what runs."""

    index: int
    bound: BoundCpu[Any, Any] | BoundModel[Any, Any]

    @property
    def name(self) -> str:
        return self.bound.operator.name

    @property
    def model(self) -> BoundModel[Any, Any] | None:
        return self.bound if isinstance(self.bound, BoundModel) else None


@dataclass(frozen=True, slots=True)
class Segment:
    """Stages the runner schedules as one: fused CPU stages, or a single model stage."""

    stages: tuple[Stage, ...]

    @property
    def model(self) -> Stage | None:
        only = self.stages[0]
        return only if only.model is not None else None

    @property
    def label(self) -> str:
        """The stage its time is reported under (that of its first operator's failures)."""
        return self.stages[0].bound.operator.stage

    def one(self, value: Any) -> Any:
        """Run fused CPU stages on one item; the first failure ends it."""
        for stage in self.stages:
            assert isinstance(stage.bound, BoundCpu)
            value = stage.bound.one(value)
            if isinstance(value, StageError):
                return value
        return value


@dataclass(frozen=True, eq=False)
class Plan:
    """A topology's model version as it runs in this process."""

    topology: Topology
    version: str
    stages: tuple[Stage, ...]
    dim: int
    _segments: dict[tuple[int, int], tuple[Segment, ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def models(self) -> list[Stage]:
        return [s for s in self.stages if s.model is not None]

    @cached_property
    def gives_parts(self) -> bool:
        """Whether its assets may have parts (a video's segments: see
        :class:`~streamer.runner.operator.WithParts`), stored as rows of their own, whether or
        not this binding makes any."""
        return any(s.bound.operator.gives_parts for s in self.stages)

    @cached_property
    def model_index(self) -> int:
        """The index of the first model stage (the stages before it prepare its inputs), or
        the number of stages when there is none."""
        return next((s.index for s in self.stages if s.model is not None), len(self.stages))

    def segments(self, first: int = 0, last: int | None = None) -> tuple[Segment, ...]:
        """The segments of stages ``first`` up to (not including) ``last``."""
        key = (first, len(self.stages) if last is None else last)
        if key not in self._segments:
            groups: list[list[Stage]] = []
            for stage in self.stages[key[0] : key[1]]:
                if stage.model is not None or not groups or groups[-1][0].model is not None:
                    groups.append([stage])
                else:
                    groups[-1].append(stage)
            self._segments[key] = tuple(Segment(tuple(g)) for g in groups)
        return self._segments[key]

    def validator(self, source: Source) -> str | None:
        """A token that changes whenever the source's content does, when the first stage can
        tell without reading it (a local file's size, time and inode); else ``None``."""
        first = self.stages[0].bound
        check = getattr(first.fn, "validator", None) if isinstance(first, BoundCpu) else None
        return check(source) if check is not None else None

    @property
    def device(self) -> str:
        """Where its first model stage runs (``cpu`` without one)."""
        model = next((s.model for s in self.stages if s.model is not None), None)
        return model.device if model is not None else "cpu"

    @property
    def precision(self) -> str:
        model = next((s.model for s in self.stages if s.model is not None), None)
        return model.precision if model is not None else "fp32"


def _fused_on_device(
    declared: tuple[Operator[Any, Any], ...], context: Context
) -> tuple[Operator[Any, Any], ...]:
    """``declared`` with the neighbours that say they run fused on the device of the model stage
    they feed (:meth:`Operator.on_device`) fused: when that device is a GPU
    (``decode_on_device`` ``auto``), on any device (``on``), or never (``off``). A fused model
    stage gets that model stage's batch policy, device and precision."""
    if context.decode_on_device == "off":
        return declared
    from streamer.runner.device import resolve_device

    chain = list(declared)
    i = 0
    while i + 1 < len(chain):
        model = next((s for s in chain[i + 1 :] if isinstance(s, ModelOperator)), None)
        if model is None:
            break
        device = resolve_device(model.device if context.device == "auto" else context.device)
        fused = None
        if context.decode_on_device == "on" or device.startswith("cuda"):
            fused = chain[i].on_device(chain[i + 1], device)
        if fused is None:
            i += 1
            continue
        if isinstance(fused, ModelOperator):
            fused = replace(
                fused, batch=model.batch, device=model.device, precision=model.precision
            )
        chain[i : i + 2] = [fused]  # and the fused stage may fuse with the next
    return tuple(chain)


def bind(topology: Topology, version: str | None, context: Context) -> Plan:
    """Bind every stage of ``version`` (default: the topology's own), neighbours fused on the
    model's device where they can be; loads its models."""
    version = version or topology.model_version
    started = time.perf_counter()
    declared = topology.stages_for(version)
    chain = _fused_on_device(declared, context)
    if len(chain) != len(declared):
        where = f"topology {topology.name!r} version {version!r} fused on the device"
        check_chain(where, chain)
        log.info(
            "%s@%s: stages %s run as %s",
            topology.name,
            version,
            [s.name for s in declared],
            [f"{s.name}:{type(s).__name__}" for s in chain],
        )
    stages: list[Stage] = []
    dim: int | None = None
    for index, operator in enumerate(chain):
        bound = operator.bind(context)
        if isinstance(operator, ModelOperator):
            assert isinstance(bound, BoundModel)
            dim = operator.output_dim(bound.model, dim)
        else:
            dim = operator.vector_dim(dim)
        stages.append(Stage(index, bound))
    if dim is None or dim < 1:
        raise ConfigError(
            f"topology {topology.name!r} version {version!r}: the length of its vectors is "
            "unknown: its vector-producing stage must say it (ModelOperator.output_dim or "
            "Operator.vector_dim)"
        )
    log.debug("bound %s@%s in %.2fs", topology.name, version, time.perf_counter() - started)
    return Plan(topology, version, tuple(stages), dim)
