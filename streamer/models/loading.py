"""Plans for this process, from its settings: models loaded with a log line, the batch size of
each model stage calibrated (or read from the calibration cache) as it loads, and, in a worker,
every batch shape run in the threads that will serve it before the plan serves."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence

from streamer.config.settings import Settings
from streamer.core.metrics import Metrics
from streamer.models.calibration import (
    CalibrationCache,
    calibrated_batch_size,
    stage_label,
    warm_up,
)
from streamer.runner.context import Context
from streamer.runner.executors import ModelThreads
from streamer.runner.plan import Plan, Stage, bind
from streamer.runner.plans import Plans, Tuned
from streamer.runner.shapes import ShapedModel
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


def warm_shapes(plans: Plans, plan: Plan, threads: ModelThreads, metrics: Metrics | None) -> None:
    """Run every batch shape of each model stage of ``plan`` in every model thread (held at a
    barrier, so each thread runs each shape), and record how long it took."""
    for stage in plan.models:
        assert stage.model is not None
        shaped = stage.model.model
        if not isinstance(shaped, ShapedModel):
            continue
        started = time.perf_counter()
        shapes = shaped.shapes_to_warm(plans.batch_size(plan, stage))
        pools = threads.pools(prepare=stage.model.operator.prepares)
        for size in shapes:
            inputs = shaped.sample_inputs(size)
            for pool in pools:
                warm_up(shaped, inputs, pool, pool.threads)
        seconds = time.perf_counter() - started
        shaped.warmed(seconds)
        if metrics is not None:
            metrics.model_warmup_seconds.labels(plan.topology.name, plan.version, stage.name).set(
                seconds
            )
        log.info(
            "model warmed",
            extra={
                "topology": plan.topology.name,
                "model_version": plan.version,
                "stage": stage.name,
                "batch_shapes": list(shapes),
                "padded": bool(shaped.sizes),
                "threads": sum(p.threads for p in pools),
                "seconds": round(seconds, 2),
            },
        )


def plans_for(
    settings: Settings,
    *,
    measure: bool = True,
    threads: ModelThreads | None = None,
    metrics: Metrics | None = None,
) -> Plans:
    """Plans bound with this process's settings. Model stages get their batch size from the
    calibration the settings ask for; ``measure=False`` only reads the calibration cache (a
    local run never stops to measure). With ``threads`` (a worker's model threads) calibration
    measures in them, model calls are padded to the bucketed sizes the settings ask for, and
    each plan's shapes are warmed in them before it serves; cold calls later are counted in
    ``metrics``."""
    batching, runtime = settings.batching, settings.runtime
    cache = CalibrationCache(batching.calibration_cache)

    def tune(plan: Plan, stage: Stage) -> Tuned | None:
        assert stage.model is not None
        streams = runtime.streams_for(stage.model.device) if threads is None else threads.streams
        calibration = calibrated_batch_size(
            stage.model.model,
            label=stage_label(plan, stage),
            mode=batching.calibrate,
            candidates=batching.calibration_sizes,
            cache=cache,
            streams=streams,
            measure=measure,
            pool=threads.lane("ingest") if threads is not None else None,
        )
        if calibration is None:
            return None
        return Tuned(calibration.batch_size, calibration.best_items_per_s)

    def cold(plan: Plan, stage: Stage, size: int) -> None:
        if metrics is not None:
            metrics.model_cold_calls.labels(plan.topology.name, plan.version, stage.name).inc()

    return Plans(
        Context.from_settings(settings),
        tuner=tune,
        pinned_batch_size=batching.max_batch_size,
        binder=_bind_logged,
        # only a worker's plans serve: shapes bucketed and kept warm in its model threads
        buckets=batching.buckets_on if threads is not None else None,
        warm=functools.partial(warm_shapes, threads=threads, metrics=metrics)
        if threads is not None
        else None,
        on_cold=cold,
    )


def load_plans(
    settings: Settings,
    topologies: Sequence[Topology],
    *,
    threads: ModelThreads | None = None,
    metrics: Metrics | None = None,
) -> Plans:
    """Plans with every topology's declared version bound now (rollout versions bind later),
    torch's threads set for the worker's model streams; see :func:`plans_for`."""
    import torch

    from streamer.runner.device import resolve_device

    torch.set_num_threads(
        settings.runtime.threads_per_stream(resolve_device(settings.runtime.device))
    )
    plans = plans_for(settings, threads=threads, metrics=metrics)
    for topology in topologies:
        plans.get(topology)
    return plans
