"""Pipeline counters, kept in process and mirrored to Redis so any process can read them."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import redis

__all__ = ["COUNTERS", "Stats"]

log = logging.getLogger(__name__)

COUNTERS = (
    "received",  # messages taken from media.uploads
    "embedded",  # items that went through a model
    "skipped",  # re-deliveries whose stored row was already current
    "reused",  # same content under new metadata: stored vector reused, no model work
    "upserted",  # rows acknowledged by the vector store
    "deleted",  # delete operations applied
    "dead_lettered",  # messages sent to media.deadletter
    "labelled",  # rows the attached classifiers labelled (events sent to media.labels)
)


class Stats:
    """Counters of every worker under ``<prefix>:stats``, and of this one under
    ``<prefix>:stats:worker:<worker>`` when a ``worker`` name is given."""

    def __init__(
        self, client: redis.Redis | None, *, prefix: str, worker: str | None = None
    ) -> None:
        self.client = client
        self.key = f"{prefix}:stats"
        self.worker_key = f"{self.key}:worker:{worker}" if worker else None
        self.local: Counter[str] = Counter()

    def add(self, counts: Mapping[str, int]) -> None:
        nonzero = {k: v for k, v in counts.items() if v}
        self.local.update(nonzero)
        if self.client is None or not nonzero:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, value in nonzero.items():
                pipe.hincrby(self.key, name, value)
                if self.worker_key:
                    pipe.hincrby(self.worker_key, name, value)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("stats not mirrored to redis: %s", exc)

    def read(self) -> dict[str, int]:
        """The counters of every worker that shares this Redis and prefix."""
        if self.client is None:
            return dict(self.local)
        raw = self.client.hgetall(self.key)
        return {k.decode(): int(v) for k, v in raw.items()}

    def per_worker(self) -> dict[str, dict[str, int]]:
        """Each worker's own counters, by worker name."""
        if self.client is None:
            return {}
        marker = f"{self.key}:worker:"
        return {
            key.decode().removeprefix(marker): {
                k.decode(): int(v) for k, v in self.client.hgetall(key).items()
            }
            for key in self.client.scan_iter(match=f"{marker}*")
        }

    def reset(self) -> None:
        self.local.clear()
        if self.client is not None:
            self.client.delete(self.key)
