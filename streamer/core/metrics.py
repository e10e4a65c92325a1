"""Prometheus metrics and health endpoints of a worker: ``/metrics``, ``/healthz``, ``/readyz``.

Liveness follows progress: a batch in flight for longer than the stall limit (stuck in retries
against a dependency, or hung) makes ``/healthz`` fail, so the orchestrator restarts the pod
and the uncommitted batch is redelivered elsewhere. ``/readyz`` passes once the models are
loaded and the agents run.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Endpoints", "Health", "Metrics", "WorkerEndpoints", "serve"]

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "streamer_stage_seconds", "time per pipeline stage and batch", ["stage"], registry=r
        )
        self.stage_busy = Counter(
            "streamer_stage_busy_seconds",
            "seconds threads spent running a stage's code (waits for a free thread left out)",
            ["stage"], registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "streamer_batch_size", "messages per batch", ["agent"], registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )  # fmt: skip
        self.items = Counter("streamer_items", "items by outcome", ["outcome"], registry=r)
        self.dead_letters = Counter(
            "streamer_dead_letters", "dead letters by stage", ["stage"], registry=r
        )
        self.lag = Gauge(
            "streamer_consumer_lag", "messages behind the end", ["topic", "partition"], registry=r
        )
        self.serving = Gauge(
            "streamer_serving_version", "1 for the version serving a topology",
            ["topology", "version"], registry=r,
        )  # fmt: skip
        self.search_seconds = Histogram(
            "streamer_search_batch_seconds", "time to answer a batch of requests", registry=r
        )
        self.model_warmup_seconds = Gauge(
            "streamer_model_warmup_seconds",
            "time to run every batch shape of a model stage in every model thread, at load",
            ["topology", "version", "stage"], registry=r,
        )  # fmt: skip
        self.model_cold_calls = Counter(
            "streamer_model_cold_calls",
            "model calls at a batch shape their thread had not run since warm-up (a GPU stalls "
            "~2 s on each); 0 in a healthy worker",
            ["topology", "version", "stage"], registry=r,
        )  # fmt: skip
        self.last_commit = Gauge(
            "streamer_last_progress_timestamp", "when a batch was last acknowledged", registry=r
        )

    def batch(self, agent: str, size: int, counts: Mapping[str, int]) -> None:
        self.batch_size.labels(agent).observe(size)
        for outcome, value in counts.items():
            if value:
                self.items.labels(outcome).inc(value)

    def stages(self, timings: Mapping[str, float], busy: Mapping[str, float] | None = None) -> None:
        """One batch's seconds per stage (from start to end), and its threads' busy seconds."""
        for stage, seconds in timings.items():
            self.stage_seconds.labels(stage).observe(seconds)
        for stage, seconds in (busy or {}).items():
            self.stage_busy.labels(stage).inc(seconds)


class Health:
    """Liveness from the batches in flight: the worker is stuck when one has been in flight for
    longer than ``stall_s`` (several may be in flight at once; the oldest counts)."""

    def __init__(self, *, stall_s: float) -> None:
        self.stall_s = stall_s
        self.ready = False
        self._busy: dict[int, float] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()

    def started(self) -> int:
        """Mark a batch in flight; pass the returned token to :meth:`finished`."""
        with self._lock:
            token = next(self._tokens)
            self._busy[token] = time.monotonic()
            return token

    def finished(self, token: int) -> None:
        with self._lock:
            self._busy.pop(token, None)

    def live(self) -> tuple[bool, str]:
        with self._lock:
            oldest = min(self._busy.values(), default=None)
        if oldest is not None and time.monotonic() - oldest > self.stall_s:
            return False, f"a batch has been in flight for over {self.stall_s:.0f}s"
        return True, "ok"


class Endpoints(Protocol):
    """What the endpoints answer: a worker's own (:class:`WorkerEndpoints`) or a group's."""

    def exposition(self) -> bytes:
        """``/metrics``: the Prometheus text exposition."""
        ...

    def live(self) -> tuple[bool, str]:
        """``/healthz``: whether it makes progress, and why not."""
        ...

    def ready(self) -> tuple[bool, str]:
        """``/readyz``: whether it takes traffic, and why not."""
        ...


class WorkerEndpoints:
    """One worker process's endpoints: its metrics and its health."""

    def __init__(self, metrics: Metrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health

    def exposition(self) -> bytes:
        return generate_latest(self.metrics.registry)

    def live(self) -> tuple[bool, str]:
        return self.health.live()

    def ready(self) -> tuple[bool, str]:
        return (True, "ready") if self.health.ready else (False, "starting")


def serve(port: int, endpoints: Endpoints) -> ThreadingHTTPServer | None:
    """Serve the endpoints on ``port`` in a daemon thread (None if the port is taken)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, endpoints.exposition(), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = endpoints.live() if self.path == "/healthz" else endpoints.ready()
                self._reply(200 if ok else 503, why.encode())
            else:
                self._reply(404, b"not found")

        def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    except OSError as exc:
        log.warning("metrics endpoint not started on port %d: %s", port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics and health endpoints up", extra={"port": port})
    return server
