"""Plans for this process, from its settings: models loaded with a log line, and the batch
size of each model stage calibrated (or read from the calibration cache) as it loads."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from streamer.config.settings import Settings
from streamer.models.calibration import CalibrationCache, calibrated_batch_size, stage_label
from streamer.runner.context import Context
from streamer.runner.plan import Plan, Stage, bind
from streamer.runner.plans import Plans
from streamer.runner.topology import Topology

__all__ = ["load_plans", "plans_for"]

log = logging.getLogger(__name__)


def _bind_logged(topology: Topology, version: str, context: Context) -> Plan:
    started = time.perf_counter()
    plan = bind(topology, version, context)
    log.info(
        "model loaded",
        extra={
            "topology": topology.name,
            "model_version": version,
            "stages": [s.name for s in plan.stages],
            "dim": plan.dim,
            "device": plan.device,
            "precision": plan.precision,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    return plan


def plans_for(settings: Settings, *, measure: bool = True) -> Plans:
    """Plans bound with this process's settings. Model stages get their batch size from the
    calibration the settings ask for; ``measure=False`` only reads the calibration cache (a
    local run never stops to measure)."""
    batching, runtime = settings.batching, settings.runtime
    cache = CalibrationCache(batching.calibration_cache)

    def tune(plan: Plan, stage: Stage) -> int | None:
        assert stage.model is not None
        calibration = calibrated_batch_size(
            stage.model.model,
            label=stage_label(plan, stage),
            mode=batching.calibrate,
            candidates=batching.calibration_sizes,
            cache=cache,
            streams=runtime.streams_for(stage.model.device),
            measure=measure,
        )
        return calibration.batch_size if calibration is not None else None

    return Plans(
        Context.from_settings(settings),
        tuner=tune,
        pinned_batch_size=batching.max_batch_size,
        binder=_bind_logged,
    )


def load_plans(settings: Settings, topologies: Sequence[Topology]) -> Plans:
    """Plans with every topology's declared version bound now (rollout versions bind later),
    torch's threads set for the worker's model streams."""
    import torch

    from streamer.runner.device import resolve_device

    torch.set_num_threads(
        settings.runtime.threads_per_stream(resolve_device(settings.runtime.device))
    )
    plans = plans_for(settings)
    for topology in topologies:
        plans.get(topology)
    return plans
