"""The plans of one process, one per (topology, model version), bound on first use.

Workers follow rollouts without a restart: a candidate version is bound (its models loaded)
as soon as the worker's warmer sees it in the registry (:mod:`streamer.worker.warmup`), or
else the first time something is written to it or searched with it. A binding holds up only
the callers of that version: plans already bound are handed out meanwhile.

A ``tuner`` may measure each model stage's best batch size when it loads (calibration); a
pinned size wins over both. A model stage that prepares the next one's inputs (``prepares``: a
decode stage on the GPU, say) is not calibrated: it takes the size of the model stage after
it, so one chunk flows through both.

With ``buckets`` the model of every stage is wrapped in a
:class:`~streamer.runner.shapes.ShapedModel` (calls padded up to a few sizes), and ``warm``
runs each freshly bound plan's shapes before the plan is handed out.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from streamer.runner.context import Context
from streamer.runner.plan import Plan, Stage, bind
from streamer.runner.shapes import ShapedModel, buckets
from streamer.runner.topology import Topology

__all__ = ["Buckets", "Plans", "Tuned", "Tuner", "Warmer"]


@dataclass(frozen=True, slots=True)
class Tuned:
    """A model stage's measured batch size, and its speed there (items/s) when measured."""

    batch_size: int
    items_per_s: float | None = None


#: measures the best batch size of one model stage of a freshly bound plan (None: keep the
#: declared one; an int: a size without a speed)
Tuner = Callable[[Plan, Stage], Tuned | int | None]
#: how many bucketed sizes a model stage on this device runs at (0: every size as it comes)
Buckets = Callable[[str], int]
#: runs a freshly bound plan's shapes in the threads that will serve it
Warmer = Callable[["Plans", Plan], None]


class Plans:
    def __init__(
        self,
        context: Context,
        *,
        tuner: Tuner | None = None,
        pinned_batch_size: int | None = None,
        binder: Callable[[Topology, str, Context], Plan] = bind,
        buckets: Buckets | None = None,
        warm: Warmer | None = None,
        on_cold: Callable[[Plan, Stage, int], None] | None = None,
    ) -> None:
        self.context = context
        self._tuner = tuner
        self._pinned = pinned_batch_size
        self._bind = binder
        self._buckets = buckets
        self._warm = warm
        self._on_cold = on_cold
        self._plans: dict[tuple[str, str], Plan] = {}
        self._sizes: dict[tuple[str, str, int], int] = {}
        self._speeds: dict[tuple[str, str, int], float] = {}
        self._lock = threading.Lock()  # guards the dicts; held for no binding
        self._binds: dict[tuple[str, str], threading.Lock] = {}

    def get(self, topology: Topology, version: str | None = None) -> Plan:
        """The plan of ``version`` (default: the topology's own); binding may load models and
        calibrate them, so call it off the event loop."""
        key = (topology.name, version or topology.model_version)
        plan = self._plans.get(key)
        if plan is not None:  # bound: no lock, so no caller waits behind another's binding
            return plan
        with self._binding(key):  # one binding per version; others' plans stay at hand
            if key not in self._plans:
                plan = self._bind(topology, key[1], self.context)
                if self._tuner is not None and self._pinned is None:
                    for stage in plan.models:
                        if not _measured(stage):
                            continue
                        tuned = self._tuner(plan, stage)
                        if isinstance(tuned, int):
                            tuned = Tuned(tuned)
                        if tuned is not None:
                            self._sizes[(*key, stage.index)] = tuned.batch_size
                            if tuned.items_per_s is not None:
                                self._speeds[(*key, stage.index)] = tuned.items_per_s
                self._follow(plan)
                self._shape(plan)
                if self._warm is not None:
                    self._warm(self, plan)
                with self._lock:
                    self._plans[key] = plan
            return self._plans[key]

    def _binding(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._binds.setdefault(key, threading.Lock())

    def _follow(self, plan: Plan) -> None:
        """Give each model stage that calls another stage's model (``sized_like``) that
        stage's batch size, from the first bound plan that runs it."""
        for stage in plan.models:
            assert stage.model is not None
            like = stage.model.operator.sized_like()
            if like is None:
                continue
            size = self._pinned
            for other in self.loaded().values():
                if size is not None:
                    break
                size = next(
                    (self.batch_size(other, s) for s in other.models
                     if s.model is not None and s.model.operator == like),
                    None,
                )  # fmt: skip
            follow = getattr(stage.model.model, "follow_batch_size", None)
            if size is not None and follow is not None:
                follow(size)

    def _shape(self, plan: Plan) -> None:
        """Wrap each model stage's model in its bucketed shapes."""
        if self._buckets is None:
            return
        for stage in plan.models:
            bound = stage.model
            assert bound is not None
            bound.model = ShapedModel(
                bound.model,
                buckets(self.batch_size(plan, stage), self._buckets(bound.device)),
                label=f"{plan.topology.name}@{plan.version}:{stage.name}",
                on_cold=functools.partial(self._cold, plan, stage),
            )

    def _cold(self, plan: Plan, stage: Stage, size: int) -> None:
        if self._on_cold is not None:
            self._on_cold(plan, stage, size)

    def batch_size(self, plan: Plan, stage: Stage) -> int:
        """Items per call of a model stage: pinned by the settings, else calibrated, else
        declared; a stage that prepares the next model stage's inputs takes that stage's size."""
        if self._pinned is not None:
            return self._pinned
        if _prepares(stage):
            following = next((s for s in plan.models if s.index > stage.index), None)
            if following is not None:
                return self.batch_size(plan, following)
        calibrated = self._sizes.get((plan.topology.name, plan.version, stage.index))
        if calibrated is not None:
            return calibrated
        assert stage.model is not None
        return stage.model.operator.batch.max_batch_size

    def calibrated(self, plan: Plan, stage: Stage) -> int | None:
        return self._sizes.get((plan.topology.name, plan.version, stage.index))

    def speed(self, plan: Plan, stage: Stage) -> float | None:
        """The measured items/s of a model stage at its batch size (None: not measured, or a
        pinned size)."""
        if self._pinned is not None:
            return None
        return self._speeds.get((plan.topology.name, plan.version, stage.index))

    def loaded(self) -> dict[tuple[str, str], Plan]:
        with self._lock:
            return dict(self._plans)


def _prepares(stage: Stage) -> bool:
    """Whether a model stage prepares the next one's inputs (its size is not measured)."""
    assert stage.model is not None
    return stage.model.operator.prepares


def _measured(stage: Stage) -> bool:
    """Whether a model stage's batch size is calibrated."""
    assert stage.model is not None
    return stage.model.operator.calibrates and not stage.model.operator.prepares
