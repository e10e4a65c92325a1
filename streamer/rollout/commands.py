"""Model rollouts: a new version written beside the old, history backfilled, an alias switched.

start     create the candidate's collection; from then on every ingest and delete is
          applied to the serving and the candidate version (shadow writes)
backfill  re-embed every asset of the serving version from its stored uri or text into the
          candidate, checkpointed in Redis so a restart resumes where the last one stopped
compare   run sample queries on both versions and report their overlap@k
promote   wait until every live worker holds the candidate warm (their presence records,
          :mod:`streamer.rollout.presence`), then point the topology's alias at it (one atomic
          Milvus call); the old version keeps receiving writes, so a rollback loses nothing
rollback  point the alias back (or abandon a rollout not yet promoted)
retire    drop a version that no longer serves, leaving a tombstone first, so a worker
          still naming it in its view of the registry never creates its collection again;
          ``start`` lifts it (give batches in flight a few seconds before starting a version
          just retired: one of them may still drop the collection ``start`` made)

A worker's delete during a backfill never leaves the asset in the candidate: the backfill looks
at the serving version again after each write (reading every acknowledged write) and the worker
deletes from the serving version first; the argument is in :mod:`streamer.ingest.pipeline`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from streamer.config.connections import redis_client
from streamer.config.settings import Settings
from streamer.core.errors import ConfigError, StageError, StreamerError
from streamer.core.messages import UploadMessage
from streamer.core.stats import Stats
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.pipeline import IngestPipeline, Record
from streamer.rollout.presence import Presence, Readiness
from streamer.rollout.registry import Registry, RolloutState
from streamer.runner.operator import Source
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.storage.store import PART_OF, VectorStore

__all__ = ["PROMOTE_WAIT_S", "BackfillProgress", "RolloutError", "Rollouts"]

log = logging.getLogger(__name__)
SNAPSHOT_CHUNK = 1000
#: how long ``promote`` waits for every live worker to hold the candidate warm
PROMOTE_WAIT_S = 120.0
READY_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    done: int
    total: int
    embedded: int  # by this run
    skipped: int  # already current in the candidate (shadow-written, or done before a crash)
    failed: int


class RolloutError(StreamerError):
    """A rollout command that cannot be carried out in the current state."""


class Rollouts:
    def __init__(
        self,
        settings: Settings,
        topologies: Sequence[Topology],
        plans: Plans | None = None,
    ) -> None:
        self.settings = settings
        self.topologies = {t.name: t for t in topologies}
        self.client = redis_client(settings.redis)
        self.store = VectorStore(settings.milvus)
        self.prefix = settings.milvus.collection_prefix
        self.registry = Registry(
            self.client, self.store, prefix=settings.redis.key_prefix, collection_prefix=self.prefix
        )
        self.presence = Presence(self.client, prefix=settings.redis.key_prefix)
        if plans is None:
            from streamer.models.loading import plans_for

            plans = plans_for(settings)
        self.plans = plans
        self._runner: Runner | None = None

    @property
    def runner(self) -> Runner:
        """The runner of backfills and compares (its pools live until :meth:`close`)."""
        if self._runner is None:
            from streamer.runner.device import resolve_device

            runtime = self.settings.runtime
            self._runner = Runner.with_threads(
                self.settings.batching.decode_workers,
                runtime.streams_for(resolve_device(runtime.device)),
                name="rollout",
                batch_size=self.plans.batch_size,
            )
        return self._runner

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self.store.close()
        self.client.close()

    def topology(self, name: str) -> Topology:
        if name not in self.topologies:
            raise ConfigError(f"unknown topology {name!r}; known: {sorted(self.topologies)}")
        return self.topologies[name]

    def collection(self, topology: Topology, version: str) -> str:
        return topology.collection_name(version, prefix=self.prefix)

    def start(self, name: str, version: str) -> RolloutState:
        topology = self.topology(name)
        topology.stages_for(version)  # declared?
        state = self.registry.read(topology)
        if version == state.serving:
            raise RolloutError(f"{version!r} already serves {name!r}")
        if state.candidate and state.candidate != version:
            raise RolloutError(
                f"a rollout of {state.candidate!r} is under way; promote or roll it back first"
            )
        dim = self.plans.get(topology, version).dim
        # lifted before the create, so that workers' checks after it leave the new collection
        # be (a batch from before the retire, still in flight, may drop it: wait for those)
        self.registry.unmark_retired(topology, version)
        self.store.ensure_collection(self.collection(topology, version), dim, model_version=version)
        if state.candidate != version:
            # a new rollout of a version rolled back before: its old snapshot and checkpoint
            # say "done", but the serving version changed since (shadow writes stopped at the
            # rollback), so the backfill walks everything again (current rows are skipped)
            self.registry.forget_checkpoint(topology, version)
        self.registry.change(topology, state.epoch, candidate=version)
        log.info("rollout started", extra={"topology": name, "candidate": version})
        return self.registry.read(topology)

    def status(self, name: str) -> dict[str, Any]:
        topology = self.topology(name)
        state = self.registry.read(topology)
        existing = set(self.store.collections(f"{self.prefix}{name}__"))
        rows = {}
        for version in topology.versions():
            collection = self.collection(topology, version)
            if collection in existing:
                rows[version] = self.store.count(collection)
        backfill = None
        if state.candidate:
            key = self.registry.checkpoint_key(topology, state.candidate)
            total = self.client.llen(f"{key}:ids")
            backfill = {"done": self.registry.checkpoint(topology, state.candidate), "total": total}
        now = time.time()
        workers = [
            {
                "worker": w.worker,
                "agents": list(w.agents),
                "warm": list(w.topologies[name]),
                "loading": list(w.loading.get(name, ())),
                "failed": dict(w.failed.get(name, {})),
                "seen_s_ago": round(max(0.0, now - w.ts), 1),
            }
            for w in self.presence.live()
            if w.serves(name)
        ]
        return {**asdict(state), "rows": rows, "backfill": backfill, "workers": workers}

    # backfill

    def _snapshot(self, topology: Topology, state: RolloutState) -> str:
        """The serving version's ids, listed once per rollout so a restart walks the same list."""
        key = f"{self.registry.checkpoint_key(topology, state.candidate or '')}:ids"
        if not self.client.exists(key):
            ids = sorted(self.store.ids(self.collection(topology, state.serving)))
            staging = f"{key}:staging"
            self.client.delete(staging)
            for start in range(0, len(ids), SNAPSHOT_CHUNK):
                self.client.rpush(staging, *ids[start : start + SNAPSHOT_CHUNK])
            if ids:
                self.client.rename(staging, key)  # the snapshot appears whole or not at all
        return key

    def _pipeline(self, topology: Topology, candidate: str) -> IngestPipeline:
        settings = self.settings
        return IngestPipeline(
            topologies=[topology],
            plans=self.plans,
            runner=self.runner,
            store=self.store,
            cache=DedupeCache(self.client, prefix=settings.redis.key_prefix),
            stats=Stats(self.client, prefix=f"{settings.redis.key_prefix}:backfill"),
            collection_prefix=self.prefix,
            versions=lambda _: [candidate],
            retired=self.registry.retired,
        )

    def backfill(
        self,
        name: str,
        *,
        batch_size: int = 64,
        progress: Callable[[BackfillProgress], None] | None = None,
    ) -> BackfillProgress:
        topology = self.topology(name)
        state = self.registry.read(topology)
        if not state.candidate:
            raise RolloutError(f"no rollout under way for {name!r}: run `rollout start` first")
        candidate = state.candidate
        key = self._snapshot(topology, state)
        total = self.client.llen(key)
        done = self.registry.checkpoint(topology, candidate)
        pipeline = self._pipeline(topology, candidate)
        serving_collection = self.collection(topology, state.serving)
        candidate_collection = self.collection(topology, candidate)
        counts = {"embedded": 0, "skipped": 0, "failed": 0}
        report = BackfillProgress(done, total, 0, 0, 0)

        def run(ids: list[str]) -> None:
            if self.registry.retired(topology, candidate):
                raise RolloutError(f"{candidate!r} was retired during its backfill")
            result = self._backfill_batch(
                pipeline, topology, serving_collection, candidate_collection, ids
            )
            for name, value in result.items():
                counts[name] += value

        while done < total:
            ids = [i.decode() for i in self.client.lrange(key, done, done + batch_size - 1)]
            run(ids)
            done = self.registry.advance(topology, candidate, done + len(ids))
            report = BackfillProgress(done, total, **counts)
            if progress is not None:
                progress(report)
        # Catch up with what the snapshot could not list: assets a worker wrote to the serving
        # version alone while it still held the registry from before `start`.
        missing = sorted(
            set(self.store.ids(serving_collection)) - set(self.store.ids(candidate_collection))
        )
        for start in range(0, len(missing), batch_size):
            run(missing[start : start + batch_size])
        report = BackfillProgress(done, total, **counts)
        if missing and progress is not None:
            progress(report)
        return report

    def _backfill_batch(
        self,
        pipeline: IngestPipeline,
        topology: Topology,
        serving_collection: str,
        candidate_collection: str,
        ids: list[str],
    ) -> dict[str, int]:
        rows = self.store.read_rows(serving_collection, ids)
        records = []
        for offset, asset_id in enumerate(ids):
            row = rows.get(asset_id)
            if row is None or PART_OF in row.metadata:  # deleted since; or a part of an asset,
                continue  # whose rows are all written anew with the asset's own
            upload = UploadMessage(
                id=row.id,
                uri=row.uri or None,
                text=row.text or None,
                media_type=topology.media_type,
                metadata=row.metadata,
            )
            records.append(Record(upload.to_bytes(), row.id.encode(), "backfill", 0, offset))
        result = asyncio.run(pipeline.process(records))
        # An asset deleted while this batch was re-embedded must not come back in the
        # candidate. Workers delete from the serving version first: if this look (which reads
        # every acknowledged write) still finds the asset there, their delete from the
        # candidate is still to come, after our write; if not, it is ours to delete.
        gone = sorted(set(rows) - set(self.store.read_rows(serving_collection, list(rows))))
        if gone:
            self.store.delete(candidate_collection, gone)
            incarnation = self.store.incarnation(candidate_collection)
            pipeline.cache.forget(f"{candidate_collection}@{incarnation}", gone)
        for letter in result.dead_letters:
            log.warning("backfill could not re-embed: %s", letter.error_message)
        return {
            "embedded": result.embedded,
            "skipped": result.skipped,
            "failed": len(result.dead_letters),
        }

    # compare, promote, rollback, retire

    def compare(self, name: str, *, queries: int = 20, k: int = 10) -> dict[str, Any]:
        """Mean overlap@k of the two versions' answers to queries made of stored assets."""
        topology = self.topology(name)
        state = self.registry.read(topology)
        other = state.candidate or state.previous
        if not other:
            raise RolloutError(f"{name!r} has no candidate or previous version to compare with")
        serving_collection = self.collection(topology, state.serving)
        ids = self.store.ids(serving_collection)
        sample = random.Random(0).sample(ids, min(queries, len(ids)))
        rows = list(self.store.read_rows(serving_collection, sample).values())
        sources = [Source(text=r.text) if r.text else Source(uri=r.uri) for r in rows]
        ids = [r.id for r in rows]
        outs = {
            version: asyncio.run(
                self.runner.run(self.plans.get(topology, version), sources, ids=ids)
            )
            for version in (state.serving, other)
        }
        usable: list[int] = []
        for i, asset_id in enumerate(ids):
            errors = [o[i] for o in outs.values() if isinstance(o[i], StageError)]
            if errors:
                log.warning("compare skips %s: %s", asset_id, errors[0])
            else:
                usable.append(i)
        answers: dict[str, list[set[str]]] = {}
        for version, vectors in outs.items():
            if not usable:
                answers[version] = []
                continue
            matrix = np.stack([vectors[i] for i in usable])
            hits = self.store.search(self.collection(topology, version), matrix, top_k=k)
            answers[version] = [{h.id for h in row} for row in hits]
        overlaps = [
            len(a & b) / k for a, b in zip(answers[state.serving], answers[other], strict=True)
        ]
        return {
            "topology": name,
            "versions": [state.serving, other],
            "queries": len(overlaps),
            "k": k,
            "overlap_at_k": round(float(np.mean(overlaps)), 4) if overlaps else None,
        }

    def promote(
        self,
        name: str,
        *,
        force: bool = False,
        wait_s: float = PROMOTE_WAIT_S,
        progress: Callable[[Readiness], None] | None = None,
    ) -> RolloutState:
        """Switch the alias to the candidate once every live worker holds it warm, waiting up
        to ``wait_s`` for them (``progress`` sees each look). ``force`` skips the checks: a
        candidate lacking assets, workers not ready (named in a warning, not waited for)."""
        topology = self.topology(name)
        state = self.registry.read(topology)
        if not state.candidate:
            raise RolloutError(f"no candidate to promote for {name!r}")
        serving = set(self.store.ids(self.collection(topology, state.serving)))
        candidate = set(self.store.ids(self.collection(topology, state.candidate)))
        missing = serving - candidate
        if missing and not force:
            raise RolloutError(
                f"the candidate lacks {len(missing)} of {len(serving)} assets: run "
                f"`rollout backfill {name}` first (or --force)"
            )
        wait_s = 0.0 if force else wait_s
        readiness = self.await_warm(name, state.candidate, wait_s=wait_s, progress=progress)
        if not readiness.live:
            log.warning(
                "no live worker reports its models: promoting without knowing they are warm",
                extra={"topology": name, "candidate": state.candidate},
            )
        elif not readiness.done:
            if not force:
                raise RolloutError(
                    f"{readiness.describe()}; waited {wait_s:g}s: look at their logs, wait "
                    f"longer (--wait) or promote anyway (--force)"
                )
            log.warning(
                "promoting before every live worker holds the candidate warm",
                extra={"topology": name, "readiness": readiness.describe()},
            )
        if self.registry.read(topology) != state:  # a rollback, say, while we waited
            raise RolloutError(
                f"the rollout state of {name!r} changed while waiting for the workers; "
                "run the command again"
            )
        alias = topology.alias(prefix=self.prefix)
        target = self.collection(topology, state.candidate)
        # a Milvus server shows a backfill's last writes to searches only after its grace time:
        # switching before then would answer from an incomplete version for a few seconds
        if not self.store.wait_searchable(target):
            log.warning("promoting before searches see every row", extra={"collection": target})
        self.store.point_alias(alias, target)
        self.registry.change(topology, state.epoch, candidate=None, previous=state.serving)
        log.info("promoted", extra={"topology": name, "serving": state.candidate})
        return self.registry.read(topology)

    def await_warm(
        self,
        name: str,
        version: str,
        *,
        wait_s: float,
        progress: Callable[[Readiness], None] | None = None,
    ) -> Readiness:
        """Look at the live workers serving ``name`` until all of them hold ``version`` warm,
        or ``wait_s`` has passed; the last look (no live worker at all counts as done)."""
        deadline = time.monotonic() + wait_s
        while True:
            readiness = self.presence.readiness(name, version)
            if progress is not None:
                progress(readiness)
            if readiness.done or time.monotonic() >= deadline:
                return readiness
            time.sleep(min(READY_POLL_S, max(0.0, deadline - time.monotonic())))

    def rollback(self, name: str) -> RolloutState:
        topology = self.topology(name)
        state = self.registry.read(topology)
        if state.candidate:  # not promoted yet: abandon it
            self.registry.change(topology, state.epoch, candidate=None)
        elif state.previous:
            alias = topology.alias(prefix=self.prefix)
            self.store.point_alias(alias, self.collection(topology, state.previous))
            self.registry.change(topology, state.epoch, previous=state.serving)
        else:
            raise RolloutError(f"{name!r} has nothing to roll back to")
        return self.registry.read(topology)

    def retire(self, name: str, version: str) -> RolloutState:
        topology = self.topology(name)
        state = self.registry.read(topology)
        if version == state.serving:
            raise RolloutError(f"{version!r} serves {name!r}; promote or roll back first")
        changes = {f: None for f in ("candidate", "previous") if getattr(state, f) == version}
        if changes:
            self.registry.change(topology, state.epoch, **changes)
        # the tombstone before the drop: a worker that read the registry before the change
        # above, and creates the collection again, finds it after its create and drops it
        self.registry.mark_retired(topology, version)
        self.store.discard(self.collection(topology, version))
        log.info("retired", extra={"topology": name, "version": version})
        self.registry.forget_checkpoint(topology, version)
        return self.registry.read(topology)
