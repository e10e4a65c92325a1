"""Which workers are live, and which model versions each holds warm.

Every worker keeps one record in Redis, ``{prefix}:workers:{worker}``: a JSON
:class:`WorkerPresence` naming its agents and, per topology it serves, the versions it holds
bound and warmed, those it is loading and those that failed to load. The worker's warmer
(:mod:`streamer.worker.warmup`) writes it every heartbeat with a TTL of a few heartbeats, and
deletes it when the worker stops; a worker that dies leaves nothing behind for longer than the
TTL. ``rollout promote`` reads these records to wait until every live worker holds the
candidate warm (:class:`Readiness`), so the first searches after the switch find their model
loaded.

The TTL is five heartbeats, not two or three: a worker whose record lapsed while it is busy
(a model load holding the GIL on a small machine) would count as gone, and a promotion would
go ahead without it; a dead worker's record lingering a few seconds longer only makes a
promotion wait those seconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis

__all__ = ["HEARTBEAT_S", "TTL_S", "Presence", "Readiness", "WorkerPresence", "presence_record"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
TTL_S = 5 * HEARTBEAT_S


@dataclass(frozen=True, slots=True)
class WorkerPresence:
    """One worker's record: per topology it serves, the versions it holds warm (bound, shapes
    warmed, calibrated), those it is loading, and those that failed to load (with the error)."""

    worker: str
    agents: tuple[str, ...]
    topologies: Mapping[str, tuple[str, ...]]
    loading: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    failed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ts: float = 0.0  # unix seconds of the record

    def serves(self, topology: str) -> bool:
        return topology in self.topologies

    def holds(self, topology: str, version: str) -> bool:
        return version in self.topologies.get(topology, ())

    def why_not(self, topology: str, version: str) -> str:
        """Why this worker does not hold ``version`` warm, in a word or two."""
        if version in self.loading.get(topology, ()):
            return "loading"
        error = self.failed.get(topology, {}).get(version)
        if error is not None:
            return f"failed: {error}"
        return "not seen yet"

    def to_json(self) -> str:
        return json.dumps(
            {
                "worker": self.worker,
                "agents": list(self.agents),
                "topologies": {t: list(v) for t, v in self.topologies.items()},
                "loading": {t: list(v) for t, v in self.loading.items() if v},
                "failed": {t: dict(v) for t, v in self.failed.items() if v},
                "ts": self.ts,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerPresence:
        data = json.loads(raw)
        return cls(
            worker=str(data["worker"]),
            agents=tuple(data.get("agents", ())),
            topologies={t: tuple(v) for t, v in data.get("topologies", {}).items()},
            loading={t: tuple(v) for t, v in data.get("loading", {}).items()},
            failed={t: dict(v) for t, v in data.get("failed", {}).items()},
            ts=float(data.get("ts", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    """Which live workers serving ``topology`` hold ``version`` warm."""

    topology: str
    version: str
    live: tuple[WorkerPresence, ...]

    @property
    def ready(self) -> tuple[WorkerPresence, ...]:
        return tuple(w for w in self.live if w.holds(self.topology, self.version))

    @property
    def waiting(self) -> tuple[WorkerPresence, ...]:
        return tuple(w for w in self.live if not w.holds(self.topology, self.version))

    @property
    def done(self) -> bool:
        """Every live worker holds the version warm (true with no live worker at all)."""
        return not self.waiting

    def describe(self) -> str:
        """``2 of 3 live workers hold v@2 warm; not ready: w3 (loading)``."""
        if not self.live:
            return f"no live worker serves {self.topology!r}"
        text = f"{len(self.ready)} of {len(self.live)} live workers hold {self.version} warm"
        if self.waiting:
            names = ", ".join(
                f"{w.worker} ({w.why_not(self.topology, self.version)})" for w in self.waiting
            )
            text += f"; not ready: {names}"
        return text


class Presence:
    """The workers' presence records under one Redis key prefix."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: float = TTL_S) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, worker: str) -> str:
        return f"{self.prefix}:workers:{worker}"

    def publish(self, record: WorkerPresence) -> None:
        """Write (or refresh) ``record``; it lapses after the TTL unless written again."""
        self.client.set(self.key(record.worker), record.to_json(), px=int(self.ttl_s * 1000))

    def remove(self, worker: str) -> None:
        self.client.delete(self.key(worker))

    def live(self) -> list[WorkerPresence]:
        """Every live worker's record, by worker name (an unreadable record is skipped)."""
        keys = sorted(self.client.scan_iter(match=f"{self.prefix}:workers:*", count=500))
        if not keys:
            return []
        records = []
        for key, raw in zip(keys, self.client.mget(keys), strict=True):
            if raw is None:  # lapsed between the scan and the read
                continue
            try:
                records.append(WorkerPresence.from_json(raw))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable worker presence record %r: %s", key, exc)
        return sorted(records, key=lambda r: r.worker)

    def readiness(self, topology: str, version: str) -> Readiness:
        serving = tuple(w for w in self.live() if w.serves(topology))
        return Readiness(topology, version, serving)


def presence_record(
    worker: str,
    agents: Sequence[str],
    topologies: Mapping[str, Sequence[str]],
    *,
    loading: Mapping[str, Sequence[str]] | None = None,
    failed: Mapping[str, Mapping[str, str]] | None = None,
) -> WorkerPresence:
    """A record stamped now."""
    return WorkerPresence(
        worker=worker,
        agents=tuple(agents),
        topologies={t: tuple(v) for t, v in topologies.items()},
        loading={t: tuple(v) for t, v in (loading or {}).items()},
        failed={t: dict(v) for t, v in (failed or {}).items()},
        ts=time.time(),
    )
