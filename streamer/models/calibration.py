"""Batch-size calibration: measure the model on this device and take the fastest batch size.

The right micro-batch depends on the hardware: on a 2-core CPU EfficientNet-Lite0 runs faster
one image at a time than in batches of 32, MiniLM runs five times faster in batches, and a GPU
wants hundreds. So a worker measures instead of assuming: for growing candidate sizes it times
forward passes on inputs shaped like real ones, stops once larger batches stop helping, and
picks the smallest size within a few percent of the best (the same speed at lower latency and
memory). Results are cached per model, device, precision, thread count and torch version, so
only the first worker on a machine pays for the measurement.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamer.runner.operator import LoadedModel
from streamer.runner.plan import Plan, Stage

__all__ = [
    "Calibration",
    "CalibrationCache",
    "calibrate",
    "calibrated_batch_size",
    "cpu_model",
    "fingerprint",
    "pick_batch_size",
    "stage_label",
    "throughput",
    "warm_up",
]

log = logging.getLogger(__name__)

#: a candidate this much slower than the best, three times in a row, ends the search (one or
#: two slow sizes are often noise on a shared machine)
_PAST_PEAK = 0.9
_SLOWER_TO_STOP = 3
#: sizes within this fraction of the best count as equally fast; the smallest wins
_TOLERANCE = 0.05


@dataclass(frozen=True, slots=True)
class Calibration:
    key: str
    batch_size: int
    items_per_s: dict[int, float]
    seconds: float
    measured_at: float

    @property
    def best_items_per_s(self) -> float:
        return self.items_per_s[self.batch_size]


def stage_label(plan: Plan, stage: Stage) -> str:
    """Names a model stage in the cache: topology, version, stage and a digest of what the
    stage declares (so a changed model is measured anew)."""
    assert stage.model is not None
    declared = hashlib.sha256(stage.model.operator.describe().encode()).hexdigest()[:10]
    return f"{plan.topology.name}|{plan.version}|{stage.name}:{declared}"


def fingerprint(label: str, model: LoadedModel[Any, Any], streams: int = 1) -> str:
    """What the measurement depends on: the model stage, hardware, precision, threads (on a
    CPU: a GPU's model calls do not use torch's CPU threads, so workers sharing a GPU with the
    cores split between them share one measurement), streams, torch."""
    import torch

    from streamer.runner.device import device_label

    threads = [] if model.device.startswith("cuda") else [f"threads={torch.get_num_threads()}"]
    return "|".join(
        [
            label,
            device_label(model.device),
            cpu_model(),
            model.precision,
            *threads,
            f"streams={streams}",
            f"torch={torch.__version__}",
        ]
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def pick_batch_size(items_per_s: dict[int, float], tolerance: float = _TOLERANCE) -> int:
    """The smallest size whose speed is within ``tolerance`` of the fastest."""
    best = max(items_per_s.values())
    return min(size for size, speed in items_per_s.items() if speed >= best * (1 - tolerance))


def calibrate(
    model: LoadedModel[Any, Any],
    candidates: Sequence[int],
    *,
    label: str,
    min_time_s: float = 0.4,
    budget_s: float = 30.0,
    streams: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    pool: Executor | None = None,
) -> Calibration:
    """Time ``model`` at each candidate size (ascending) and pick the fastest.

    Every call runs on ``pool`` (default: one of its own with ``streams`` threads), one call per
    thread at once, as a worker's model threads run them. Before a size is timed, each thread
    warms it up: a GPU builds execution plans per thread and per input shape (~2 s each), which
    is a cost of the first call, not of the model. The figure for a size is the median rate of
    at least three timed rounds (steady state: a stray stall is not the speed). The search stops
    after three sizes in a row clearly slower than the best, at ``budget_s``, or when the device
    runs out of memory.
    """
    sizes = sorted(set(candidates))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"calibration needs positive batch sizes, got {list(candidates)}")
    started = clock()
    speeds: dict[int, float] = {}
    slower = 0
    with _pool(pool, streams) as threads:
        # the first calls of a fresh model are slow (weights paged in, kernels chosen): not data
        warm_up(model, model.sample_inputs(sizes[0]), threads, streams, calls=3)
        for size in sizes:
            inputs = model.sample_inputs(size)
            try:
                warm_up(model, inputs, threads, streams)
                speeds[size] = throughput(
                    model, [inputs] * streams, threads, min_time_s=min_time_s, clock=clock
                )
            except Exception as exc:  # out of memory at this size: the previous sizes stand
                if not speeds or not _out_of_memory(exc):
                    raise
                log.info("calibration stopped at batch %d: %s", size, exc)
                break
            best = max(speeds.values())
            slower = slower + 1 if speeds[size] < best * _PAST_PEAK else 0
            if slower >= _SLOWER_TO_STOP or clock() - started > budget_s:
                break
    return Calibration(
        key=fingerprint(label, model, streams),
        batch_size=pick_batch_size(speeds),
        items_per_s={k: round(v, 2) for k, v in speeds.items()},
        seconds=round(clock() - started, 2),
        measured_at=time.time(),
    )


@contextlib.contextmanager
def _pool(given: Executor | None, streams: int) -> Iterator[Executor]:
    if given is not None:
        yield given
        return
    with ThreadPoolExecutor(streams, thread_name_prefix="calibrate") as own:
        yield own


def warm_up(
    model: Callable[[Any], Any],
    inputs: Any,
    pool: Executor,
    threads: int,
    *,
    calls: int = 1,
    timeout_s: float = 600.0,
) -> None:
    """Call ``model`` on ``inputs`` ``calls`` times in each of the ``threads`` threads of
    ``pool``: all of them at once, held at a barrier, so no thread is left cold for this shape
    (``pool`` must have exactly ``threads`` threads, all idle)."""
    barrier = threading.Barrier(threads)

    def each() -> None:
        barrier.wait(timeout=timeout_s)
        for _ in range(calls):
            model(inputs)

    for future in [pool.submit(each) for _ in range(threads)]:
        future.result()


def throughput(
    embed: Callable[[list[Any]], Any],
    chunks: Sequence[list[Any]],
    pool: Executor,
    *,
    min_time_s: float,
    clock: Callable[[], float] = time.perf_counter,
    min_rounds: int = 3,
) -> float:
    """Steady-state items per second of ``embed`` over ``chunks``, run on ``pool`` (as many at
    once as it has threads): the median rate of at least ``min_rounds`` rounds, repeated for at
    least ``min_time_s``."""
    items = sum(len(chunk) for chunk in chunks)
    rates: list[float] = []
    first = clock()
    while True:
        t0 = clock()
        for _ in pool.map(embed, chunks):
            pass
        rates.append(items / max(clock() - t0, 1e-9))
        if len(rates) >= min_rounds and clock() - first >= min_time_s:
            return statistics.median(rates)


def _out_of_memory(exc: Exception) -> bool:
    return "out of memory" in str(exc).lower()


class CalibrationCache:
    """Calibrations in one JSON file, keyed by :func:`fingerprint`; shared by the workers of a
    machine. A corrupt or unreadable file counts as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Calibration | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return Calibration(
                key=key,
                batch_size=int(entry["batch_size"]),
                items_per_s={int(k): float(v) for k, v in entry["items_per_s"].items()},
                seconds=float(entry["seconds"]),
                measured_at=float(entry["measured_at"]),
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def put(self, calibration: Calibration) -> bool:
        """Save ``calibration``; a cache that cannot be written is logged, not fatal (the
        measurement still serves this process). Returns whether it was saved."""
        data = self._read()
        entry = asdict(calibration)
        entry.pop("key")
        data[calibration.key] = entry
        try:
            with _atomic_write(self.path) as tmp:
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:
            log.warning(
                "calibration not saved to %s: %s; the next start measures again "
                "(set STREAMER_BATCH_CALIBRATION_CACHE to a writable file)",
                self.path,
                exc.strerror or exc,
            )
            return False
        return True


@contextlib.contextmanager
def _atomic_write(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def calibrated_batch_size(
    model: LoadedModel[Any, Any],
    *,
    label: str,
    mode: str,
    candidates: Sequence[int],
    cache: CalibrationCache,
    streams: int = 1,
    measure: bool = True,
    pool: Executor | None = None,
) -> Calibration | None:
    """The calibration ``mode`` asks for: ``off`` (none), ``cached`` (measure only when the
    cache has no entry for this fingerprint), ``always`` (measure and update the cache).
    ``measure=False`` only reads the cache. ``pool``: the threads to measure in (``streams``
    of them; default: threads of its own)."""
    if mode == "off":
        return None
    key = fingerprint(label, model, streams)
    if (mode == "cached" or not measure) and (known := cache.get(key)) is not None:
        return known
    if not measure:
        return None
    result = calibrate(model, candidates, label=label, streams=streams, pool=pool)
    cache.put(result)
    log.info(
        "batch size calibrated",
        extra={
            "stage": label,
            "batch_size": result.batch_size,
            "items_per_s": result.items_per_s,
            "seconds": result.seconds,
        },
    )
    return result
