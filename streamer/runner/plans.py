"""The plans of one process, one per (topology, model version), bound on first use.

Workers follow rollouts without a restart: a candidate version is bound (its models loaded)
the first time something is written to it or searched with it. A ``tuner`` may measure each
model stage's best batch size when it loads (calibration); a pinned size wins over both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from streamer.runner.context import Context
from streamer.runner.plan import Plan, Stage, bind
from streamer.runner.topology import Topology

__all__ = ["Plans", "Tuner"]

#: measures the best batch size of one model stage of a freshly bound plan (None: keep the
#: declared one)
Tuner = Callable[[Plan, Stage], int | None]


class Plans:
    def __init__(
        self,
        context: Context,
        *,
        tuner: Tuner | None = None,
        pinned_batch_size: int | None = None,
        binder: Callable[[Topology, str, Context], Plan] = bind,
    ) -> None:
        self.context = context
        self._tuner = tuner
        self._pinned = pinned_batch_size
        self._bind = binder
        self._plans: dict[tuple[str, str], Plan] = {}
        self._sizes: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def get(self, topology: Topology, version: str | None = None) -> Plan:
        """The plan of ``version`` (default: the topology's own); binding may load models and
        calibrate them, so call it off the event loop."""
        key = (topology.name, version or topology.model_version)
        with self._lock:
            if key not in self._plans:
                plan = self._bind(topology, key[1], self.context)
                if self._tuner is not None and self._pinned is None:
                    for stage in plan.models:
                        if (size := self._tuner(plan, stage)) is not None:
                            self._sizes[(*key, stage.index)] = size
                self._plans[key] = plan
            return self._plans[key]

    def batch_size(self, plan: Plan, stage: Stage) -> int:
        """Items per call of a model stage: pinned by the settings, else calibrated, else
        declared."""
        if self._pinned is not None:
            return self._pinned
        calibrated = self._sizes.get((plan.topology.name, plan.version, stage.index))
        if calibrated is not None:
            return calibrated
        assert stage.model is not None
        return stage.model.operator.batch.max_batch_size

    def calibrated(self, plan: Plan, stage: Stage) -> int | None:
        return self._sizes.get((plan.topology.name, plan.version, stage.index))

    def loaded(self) -> dict[tuple[str, str], Plan]:
        with self._lock:
            return dict(self._plans)
