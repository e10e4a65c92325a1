"""The worker's warmer: every model version the registry names, bound and warm before it is
asked for, and the worker's presence record that says so.

Without it a worker bound a rollout's candidate (loaded its model, calibrated it, ran its batch
shapes in the model threads) on the first write or search that needed it, so after a promotion
the first answer waited for all of that (10 s on a CPU). The warmer reads the registry of every
topology the worker serves each heartbeat, and binds each target version (serving, candidate,
previous) the worker does not hold yet: one at a time, in a thread of its own, so neither the
event loop nor a caller of another version waits for it (:class:`~streamer.runner.plans.Plans`
holds up only the callers of the version being bound); only the warm-up calls themselves take
their turn in the model threads.

Each heartbeat also writes the worker's presence record (:mod:`streamer.rollout.presence`):
the versions it holds warm, those loading and those that failed to load (tried again every
``retry_failed_s``). ``rollout promote`` waits until every live worker holds the candidate.

:meth:`Warmer.start` binds the serving version before it returns, so a worker started after a
promotion (the alias then names another version than the one its topology declares, which
:func:`~streamer.models.loading.load_plans` bound) takes no work before its model is warm.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

import redis

from streamer.rollout.presence import HEARTBEAT_S, Presence, WorkerPresence, presence_record
from streamer.rollout.registry import Registry
from streamer.runner.plans import Plans
from streamer.runner.topology import Topology

__all__ = ["RETRY_FAILED_S", "Warmer"]

log = logging.getLogger(__name__)

#: how long after a failed load the warmer tries that version again
RETRY_FAILED_S = 30.0
_Key = tuple[str, str]  # (topology name, model version)


class Warmer:
    def __init__(
        self,
        worker: str,
        agents: Sequence[str],
        topologies: Sequence[Topology],
        plans: Plans,
        registry: Registry,
        *,
        presence: Presence | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        retry_failed_s: float = RETRY_FAILED_S,
    ) -> None:
        self.worker = worker
        self.agents = tuple(agents)
        self.topologies = tuple(topologies)
        self.plans = plans
        self.registry = registry
        self.presence = presence or Presence(registry.client, prefix=registry.prefix)
        self.heartbeat_s = heartbeat_s
        self.retry_failed_s = retry_failed_s
        self._queue: queue.Queue[tuple[Topology, str] | None] = queue.Queue()
        self._wanted: set[_Key] = set()  # queued or being bound
        self._failed: dict[_Key, tuple[str, float]] = {}  # error, monotonic time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None
        self._binder: threading.Thread | None = None
        self._unpublished: str | None = None  # the last publish error, logged once

    def start(self) -> None:
        """Bind each topology's serving version (if not yet), then beat in the background."""
        for topology in self.topologies:
            try:
                serving = self.registry.read(topology).serving
            except Exception as exc:  # the heartbeat tries again
                log.warning("rollout registry unreadable at start: %s", exc)
                continue
            if (topology.name, serving) not in self.plans.loaded():
                self.warm(topology, serving)
        self._binder = threading.Thread(target=self._bind_loop, name="warmup-bind", daemon=True)
        self._beats = threading.Thread(target=self._beat_loop, name="warmup-beat", daemon=True)
        self._binder.start()
        self._beats.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop beating and delete the presence record. A binding under way is left to end
        with the process (its thread is a daemon)."""
        self._stop.set()
        self._queue.put(None)
        if self._beats is not None:
            self._beats.join(timeout_s)  # no beat may write the record after it is deleted
        try:
            self.presence.remove(self.worker)
        except redis.RedisError as exc:
            log.warning("could not delete the worker's presence record (it lapses): %s", exc)

    def beat(self) -> WorkerPresence:
        """One heartbeat: queue the registry's versions not bound yet, publish the record."""
        for topology in self.topologies:
            try:
                targets = self.registry.read(topology).targets()
            except Exception as exc:  # Milvus (the alias) unreachable: next beat
                log.warning("rollout registry unreadable", extra={"error": str(exc)})
                continue
            for version in targets:
                self._want(topology, version)
        return self.publish()

    def publish(self) -> WorkerPresence:
        record = self.record()
        if self._stop.is_set():
            return record
        try:
            self.presence.publish(record)
        except redis.RedisError as exc:
            if self._unpublished is None:
                log.warning("could not publish the worker's presence record: %s", exc)
            self._unpublished = str(exc)
        else:
            if self._unpublished is not None:
                log.info("worker presence record published again")
            self._unpublished = None
        return record

    def record(self) -> WorkerPresence:
        loaded = self.plans.loaded()
        with self._lock:
            wanted = set(self._wanted)
            failed = dict(self._failed)
        names = [t.name for t in self.topologies]
        return presence_record(
            self.worker,
            self.agents,
            {n: sorted(v for t, v in loaded if t == n) for n in names},
            loading={n: sorted(v for t, v in wanted if t == n) for n in names},
            failed={n: {v: e for (t, v), (e, _) in failed.items() if t == n} for n in names},
        )

    def warm(self, topology: Topology, version: str) -> bool:
        """Bind ``version`` of ``topology`` here and now (load, calibrate, warm its shapes in
        the model threads); whether it is warm. A failure is recorded, not raised."""
        key = (topology.name, version)
        started = time.perf_counter()
        try:
            self.plans.get(topology, version)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._wanted.discard(key)
                self._failed[key] = (error, time.monotonic())
            log.warning(
                "model version failed to load",
                extra={"topology": topology.name, "model_version": version, "error": error},
            )
            return False
        with self._lock:
            self._wanted.discard(key)
            self._failed.pop(key, None)
        log.info(
            "model version warm",
            extra={
                "topology": topology.name,
                "model_version": version,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        return True

    def _want(self, topology: Topology, version: str) -> None:
        key = (topology.name, version)
        if key in self.plans.loaded():
            return
        with self._lock:
            if key in self._wanted:
                return
            failed = self._failed.get(key)
            if failed is not None and time.monotonic() - failed[1] < self.retry_failed_s:
                return
            self._wanted.add(key)
        self._queue.put((topology, version))

    def _beat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # a beat must never end the beating
                log.exception("warmer heartbeat failed")
            self._stop.wait(self.heartbeat_s)

    def _bind_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            if self.warm(*item):
                self.publish()  # promptly: a promotion may be waiting for it
