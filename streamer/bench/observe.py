"""Watching a benchmark's worker process: its memory, and how much it has processed."""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from streamer.core.errors import StreamerError
from streamer.core.stats import Stats

__all__ = ["Counters", "RssSampler", "own_peak_mb", "status_mb", "wait_received"]


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
