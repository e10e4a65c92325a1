"""Model versions per topology: which one serves, which one is rolled out, which one came before.

The serving version is whatever the topology's Milvus alias points at (the alias is the truth,
so a flushed Redis never sends writes to the wrong collection). Redis holds the rest: the
candidate being rolled out, the previous version kept for rollback, and an epoch. Every change
is a compare-and-set on the epoch (a Lua script), so a late writer holding an old view can
never overwrite a newer state; backfill checkpoints only move forward, by the same means.

A retired version leaves a tombstone (``{prefix}:retired:{topology}:{version}``), set before its
collection is dropped and kept until ``rollout start`` starts that version again: a worker
that read the registry before the retire learns from it that the version takes no more writes
(:mod:`streamer.ingest.pipeline` argues why that closes the race).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from streamer.core.errors import StreamerError
from streamer.runner.topology import Topology
from streamer.storage.store import VectorStore

__all__ = ["Registry", "RolloutConflict", "RolloutState"]

log = logging.getLogger(__name__)

_CAS = """
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch ~= tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'epoch', epoch + 1)
return epoch + 1
"""

_FORWARD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local proposed = tonumber(ARGV[1])
if proposed > current then redis.call('SET', KEYS[1], ARGV[1]) return proposed end
return current
"""


class RolloutConflict(StreamerError):
    """Someone else changed the rollout state first; read it again and decide anew."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    topology: str
    serving: str
    candidate: str | None = None
    previous: str | None = None
    epoch: int = 0
    updated_ms: int = 0

    def targets(self) -> list[str]:
        """Every version that ingest writes to: serving, candidate (shadow) and previous."""
        return list(dict.fromkeys(v for v in (self.serving, self.candidate, self.previous) if v))


class Registry:
    def __init__(
        self, client: redis.Redis, store: VectorStore, *, prefix: str, collection_prefix: str = ""
    ) -> None:
        self.client = client
        self.store = store
        self.prefix = prefix
        self.collection_prefix = collection_prefix
        self._cas = client.register_script(_CAS)
        self._forward = client.register_script(_FORWARD)
        self._last: dict[str, RolloutState] = {}
        self._retired: dict[str, bool] = {}  # the last answer per tombstone key

    def key(self, topology: Topology) -> str:
        return f"{self.prefix}:registry:{topology.name}"

    def serving(self, topology: Topology) -> str:
        """The version the alias points at, or the topology's own before anything is indexed."""
        target = self.store.alias_target(topology.alias(prefix=self.collection_prefix))
        version = self.store.model_version(target) if target else None
        return version or topology.model_version

    def read(self, topology: Topology) -> RolloutState:
        serving = self.serving(topology)
        try:
            raw = {
                k.decode(): v.decode() for k, v in self.client.hgetall(self.key(topology)).items()
            }
        except redis.RedisError as exc:
            cached = self._last.get(topology.name)
            log.warning("rollout registry unreadable, using the last state seen: %s", exc)
            return cached or RolloutState(topology.name, serving)
        state = RolloutState(
            topology=topology.name,
            serving=serving,
            candidate=raw.get("candidate") or None,
            previous=raw.get("previous") or None,
            epoch=int(raw.get("epoch", 0)),
            updated_ms=int(raw.get("updated_ms", 0)),
        )
        self._last[topology.name] = state
        return state

    def change(self, topology: Topology, expected_epoch: int, **fields: str | None) -> int:
        """Set ``fields`` if the epoch is still ``expected_epoch``; returns the new epoch."""
        args: list[str | int] = [expected_epoch]
        for name, value in {**fields, "updated_ms": str(int(time.time() * 1000))}.items():
            args += [name, value or ""]
        epoch = int(self._cas(keys=[self.key(topology)], args=args))
        if epoch < 0:
            raise RolloutConflict(
                f"the rollout state of {topology.name!r} changed meanwhile; run the command again"
            )
        return epoch

    def checkpoint_key(self, topology: Topology, version: str) -> str:
        return f"{self.prefix}:backfill:{topology.name}:{version}"

    def checkpoint(self, topology: Topology, version: str) -> int:
        """How many ids of the backfill snapshot are done (0 before it starts)."""
        value = self.client.get(f"{self.checkpoint_key(topology, version)}:done")
        return int(value) if value is not None else 0

    def forget_checkpoint(self, topology: Topology, version: str) -> None:
        """Drop the backfill's snapshot and checkpoint of ``version``: the next backfill lists
        the serving version anew and walks all of it."""
        key = self.checkpoint_key(topology, version)
        self.client.delete(f"{key}:ids", f"{key}:done", f"{key}:ids:staging")

    def advance(self, topology: Topology, version: str, done: int) -> int:
        """Move the checkpoint forward to ``done``; never back."""
        return int(
            self._forward(keys=[f"{self.checkpoint_key(topology, version)}:done"], args=[done])
        )

    # tombstones of retired versions

    def tombstone_key(self, topology: Topology, version: str) -> str:
        return f"{self.prefix}:retired:{topology.name}:{version}"

    def mark_retired(self, topology: Topology, version: str) -> None:
        """Leave the tombstone of ``version``: from now on no one writes to it."""
        self.client.set(self.tombstone_key(topology, version), str(int(time.time() * 1000)))

    def unmark_retired(self, topology: Topology, version: str) -> None:
        """Remove the tombstone of ``version`` (it is being rolled out again)."""
        self.client.delete(self.tombstone_key(topology, version))

    def retired(self, topology: Topology, version: str) -> bool:
        """Whether ``version`` is retired. With Redis unreadable, the last answer seen: a
        retire sets the tombstone before it drops anything, so none is carried out while Redis
        is down (one that set it just before is seen once Redis answers again; until then a
        worker may make the collection anew, which ``rollout retire`` run again drops)."""
        key = self.tombstone_key(topology, version)
        try:
            answer = bool(self.client.exists(key))
        except redis.RedisError as exc:
            log.warning("rollout registry unreadable, using the last tombstones seen: %s", exc)
            return self._retired.get(key, False)
        self._retired[key] = answer
        return answer
