"""Watching a benchmark's worker process: its memory, how much it has processed, where its
time goes (its own ``/metrics``), and how busy the GPU is."""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from streamer.core.errors import StreamerError
from streamer.core.stats import Stats

__all__ = [
    "Counters",
    "GpuBusy",
    "RssSampler",
    "StageTimes",
    "WorkerMetrics",
    "alive",
    "group_children",
    "own_peak_mb",
    "status_mb",
    "wait_ready",
    "wait_received",
]


def status_mb(pid: int, field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in MB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def group_children(pid: int) -> list[int]:
    """The processes ``pid`` started (a worker group's), in pid order, from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(child) for child in task.read_text().split())
        except OSError:
            continue
    if not found:
        raise StreamerError(f"process {pid} has no children (is it a worker group?)")
    return sorted(found)


class RssSampler(threading.Thread):
    """Samples a process's RSS every ``every_s`` seconds; keeps the peak."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.every_s = pid, every_s
        self.peak_mb = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, status_mb(self.pid, "VmRSS"))

    def stop(self) -> None:
        self._stop_event.set()


class Counters:
    """The pipeline counters every worker mirrors to Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.stats = Stats(client, prefix=prefix)

    def received(self) -> int:
        return self.stats.read().get("received", 0)

    def snapshot(self) -> dict[str, int]:
        return self.stats.read()


def wait_received(
    counters: Counters,
    target: int,
    *,
    workers: Sequence[subprocess.Popen[bytes]],
    timeout_s: float,
    on_tick: Callable[[int], None] = lambda received: None,
) -> float:
    """Wait until the workers have processed ``target`` messages in all; returns when."""
    deadline = time.monotonic() + timeout_s
    while True:
        received = counters.received()
        on_tick(received)
        if received >= target:
            return time.perf_counter()
        alive(workers)
        if time.monotonic() > deadline:
            raise StreamerError(f"timed out: {received} of {target} messages processed")
        time.sleep(0.02)


def alive(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """Raise if any of ``workers`` has exited."""
    for worker in workers:
        if worker.poll() is not None:
            raise StreamerError(f"a benchmark worker exited with {worker.returncode}")


class GpuBusy:
    """How busy the GPU is while a phase runs: ``nvidia-smi``'s utilisation (the share of time
    a kernel was running) sampled every ``every_ms``; :attr:`pct` is the mean over the samples.
    On a machine without ``nvidia-smi`` it measures nothing (``pct`` stays ``None``)."""

    def __init__(self, every_ms: int = 100) -> None:
        self.every_ms = every_ms
        self.samples: list[int] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return self
        self._proc = subprocess.Popen(
            [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             f"--loop-ms={self.every_ms}", "--id=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True, name="gpu-busy")
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append(int(line.strip()))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    @property
    def pct(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


@dataclass(frozen=True)
class StageTimes:
    """What a worker's ``/metrics`` add up to at one moment, per pipeline stage: seconds from
    a chunk's start of the stage to its end (waits for a free thread included, so chunks in
    flight together overlap) and seconds its threads were busy running it; batches and
    messages taken; model calls at a shape not warmed up (a GPU stalls on each)."""

    stages: Mapping[str, float] = field(default_factory=dict)
    busy: Mapping[str, float] = field(default_factory=dict)
    batches: float = 0.0
    messages: float = 0.0
    cold_calls: float = 0.0

    @classmethod
    def parse(cls, text: str) -> StageTimes:
        """From the Prometheus text a worker serves (:mod:`streamer.core.metrics`)."""
        stages: dict[str, float] = {}
        busy: dict[str, float] = {}
        batches = messages = cold = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "streamer_stage_seconds_sum":
                    stages[sample.labels["stage"]] = sample.value
                elif sample.name == "streamer_stage_busy_seconds_total":
                    busy[sample.labels["stage"]] = sample.value
                elif sample.name == "streamer_batch_size_count":
                    batches += sample.value
                elif sample.name == "streamer_batch_size_sum":
                    messages += sample.value
                elif sample.name == "streamer_model_cold_calls_total":
                    cold += sample.value
        return cls(stages, busy, batches, messages, cold)

    @classmethod
    def combined(cls, times: Sequence[StageTimes]) -> StageTimes:
        """The sums of several workers' figures."""

        def summed(of: Callable[[StageTimes], Mapping[str, float]]) -> dict[str, float]:
            totals: dict[str, float] = {}
            for t in times:
                for stage, value in of(t).items():
                    totals[stage] = totals.get(stage, 0.0) + value
            return totals

        return cls(
            summed(lambda t: t.stages),
            summed(lambda t: t.busy),
            sum(t.batches for t in times),
            sum(t.messages for t in times),
            sum(t.cold_calls for t in times),
        )

    def since(self, before: StageTimes, wall_s: float) -> dict[str, Any]:
        """The figures of the span from ``before`` to this moment, ``wall_s`` long: per stage
        (busiest first) its seconds, busy seconds and busy share of the wall time (100 % is
        one thread busy throughout); batches, mean batch, cold calls."""
        stages: dict[str, dict[str, float]] = {}
        for stage in {*self.stages, *self.busy}:
            seconds = self.stages.get(stage, 0.0) - before.stages.get(stage, 0.0)
            busy = self.busy.get(stage, 0.0) - before.busy.get(stage, 0.0)
            if seconds > 0 or busy > 0:
                stages[stage] = {
                    "seconds": round(seconds, 3),
                    "busy_s": round(busy, 3),
                    "busy_pct": round(100 * busy / wall_s, 1),
                }
        batches = self.batches - before.batches
        return {
            "wall_s": round(wall_s, 3),
            "stages": dict(
                sorted(stages.items(), key=lambda kv: (-kv[1]["busy_s"], -kv[1]["seconds"]))
            ),
            "batches": int(batches),
            "mean_batch": round((self.messages - before.messages) / batches, 1) if batches else 0,
            "cold_calls": int(self.cold_calls - before.cold_calls),
        }


class WorkerMetrics:
    """Reads a worker's ``/metrics`` on ``port`` (``STREAMER_METRICS_PORT``)."""

    def __init__(self, port: int, *, timeout_s: float = 5.0) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.timeout_s = timeout_s

    def read(self) -> StageTimes:
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as reply:
            return StageTimes.parse(reply.read().decode())

    def ready(self) -> bool:
        """Whether the worker's ``/readyz`` passes (models loaded, agents running)."""
        url = self.url.removesuffix("/metrics") + "/readyz"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as reply:
                return bool(reply.status == 200)
        except OSError:  # not serving yet (refused), or 503 while starting
            return False


def wait_ready(
    metrics: Sequence[WorkerMetrics],
    workers: Sequence[subprocess.Popen[bytes]],
    *,
    timeout_s: float,
) -> None:
    """Wait until every worker's ``/readyz`` passes (models loaded and warmed, agents run)."""
    deadline = time.monotonic() + timeout_s
    while not all(m.ready() for m in metrics):
        alive(workers)
        if time.monotonic() > deadline:
            raise StreamerError(f"timed out: the workers were not ready in {timeout_s:.0f} s")
        time.sleep(0.2)
