"""Watching a benchmark's worker process: its memory, how much it has processed, and how
busy the GPU is."""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from streamer.core.errors import StreamerError
from streamer.core.stats import Stats

__all__ = ["Counters", "GpuBusy", "RssSampler", "own_peak_mb", "status_mb", "wait_received"]


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
    worker: subprocess.Popen[bytes],
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
        if worker.poll() is not None:
            raise StreamerError(f"the benchmark worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise StreamerError(f"timed out: {received} of {target} messages processed")
        time.sleep(0.02)


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
             f"-lms={self.every_ms}", "--id=0"],
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
