"""The ingest path of one micro-batch, independent of Kafka: records in, rows and dead letters out.

    intake ─► deletes (every version's collection, the serving one first)
           └► upserts, per topology:
                version targets (serving, and during a rollout the candidate and previous;
                                 retired versions left out)
                unchanged sources (not even read) ─► fetch (runner: the topology's first stage)
                per target: change detection ─► the rest of the topology (runner)
                            ─► attached classifiers (labels) ─► sink ─► label events

The stages of a topology run in the :class:`~streamer.runner.runner.Runner`; around it this
module keeps what belongs to the stream: routing, deletes, version targets, dedupe, the sink
and dead letters. A dependency that is down is retried until it answers, so the caller only
acknowledges a batch the vector store has acknowledged.

Races with rollout commands (run by other processes while a batch is in flight):

retire    ``rollout retire`` sets the version's tombstone (R1), then drops its collection (R2).
          A batch reads its versions once, so it may still name the version. Only
          ``ensure_collection`` creates a collection (upserts, deletes and lookups into a
          dropped one fail), and each one is followed by a tombstone check; a version whose
          tombstone is seen, at any check, takes no more writes and its collection is dropped
          (idempotent). Whichever the order: a check after our create that sees the tombstone
          drops what we created, and nothing of ours creates afterwards; one that does not see
          it ran before R1, so R2 comes after our create and drops it. A write into the
          collection dropped meanwhile fails; it is then checked against the tombstone and
          passed over, not dead-lettered. Checks also come before the create (so a stale view
          never creates it at all) and before the upsert (so the rows are not sent to be lost).
delete    a backfill reads an asset from the serving version (the alias target), writes it to
          the candidate, then looks at the serving version again and deletes from the
          candidate what vanished meanwhile. A worker deletes from the serving version first,
          then from the others. If the backfill's second look comes after our serving delete,
          it sees the asset gone (it reads its own and everyone's acknowledged writes) and
          deletes it from the candidate; if it comes before, the backfill's write to the
          candidate came before too, and our candidate delete, later still, removes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from streamer.core.digests import content_hash, row_digest, source_digest
from streamer.core.errors import SinkError, StageError, StreamerError
from streamer.core.messages import DeadLetter
from streamer.core.retry import retry_blocking
from streamer.core.stats import Stats
from streamer.ingest.changes import ChangeDetector, Content
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.intake import Asset, dead_letter, take_in
from streamer.ingest.labels import label_events, label_rows
from streamer.ingest.records import IngestReport, Record
from streamer.ingest.sink import Sink, rows_of
from streamer.runner.operator import Part
from streamer.runner.plan import Plan
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.storage.store import VectorRow, VectorStore, part_id
from streamer.trainer.classifier import Classifier

__all__ = ["IngestPipeline", "IngestReport", "Record"]

T = TypeVar("T")
log = logging.getLogger(__name__)

#: assets hashed per task of the CPU pool
_HASH_SLICE = 32


@dataclass(frozen=True, slots=True)
class _Target:
    """One model version a topology's rows are written to."""

    version: str
    plan: Plan
    collection: str
    cache_key: str  # the collection and its incarnation


class IngestPipeline:
    def __init__(
        self,
        *,
        topologies: Sequence[Topology],
        plans: Plans,
        runner: Runner,
        store: VectorStore,
        cache: DedupeCache,
        stats: Stats,
        collection_prefix: str = "",
        max_retry_pause_s: float = 30.0,
        versions: Callable[[Topology], Sequence[str]] | None = None,
        retired: Callable[[Topology, str], bool] | None = None,
        classifiers: Callable[[str, str], Sequence[Classifier]] | None = None,
    ) -> None:
        """``versions`` says which model versions a topology's rows are written to (serving,
        and during a rollout the candidate and the previous one); default: the declared one.
        ``retired`` says whether a version was retired (its collection dropped, never to be
        written again), however recently; default: none is. ``classifiers`` names the
        classifiers attached to a topology's version (see :mod:`streamer.ingest.labels`):
        they label each row written; default: none."""
        self.topologies = {t.name: t for t in topologies}
        self.plans = plans
        self.runner = runner
        self.store = store
        self.cache = cache
        self.stats = stats
        self.prefix = collection_prefix
        self.max_retry_pause_s = max_retry_pause_s
        self.versions = versions or (lambda topology: [topology.model_version])
        self.retired = retired or (lambda topology, version: False)
        self.classifiers = classifiers or (lambda topology, version: [])
        self._passed_over: set[tuple[str, str]] = set()  # retired versions logged
        self.changes = ChangeDetector(store, cache, self._io)
        self.sink = Sink(store, self._io)

    async def _io(self, what: str, fn: Callable[[], T]) -> T:
        return await retry_blocking(what, fn, max_pause_s=self.max_retry_pause_s)

    async def process(self, records: Sequence[Record]) -> IngestReport:
        report = IngestReport(received=len(records))
        intake = take_in(records, list(self.topologies.values()))
        report.dead_letters += intake.dead_letters
        if intake.deletes:
            report.deleted += await self._delete(intake.deletes)
        for name, assets in intake.upserts.items():
            await self._upsert(self.topologies[name], assets, report)
        report.dead_letters = _first_per_record(report.dead_letters)
        self.stats.add(report.counts())
        return report

    async def _delete(self, assets: Sequence[Asset]) -> int:
        ids_by_topology: dict[str, list[str]] = {}
        every = list(self.topologies.values())
        for asset in assets:
            kind = asset.upload.media_type
            # its medium's topologies; every one when it names none (or one not served here)
            chosen = [t for t in every if t.media_type == kind] or every
            for topology in chosen:
                ids_by_topology.setdefault(topology.name, []).append(asset.id)
        await self._io("delete", lambda: self._delete_everywhere(ids_by_topology))
        return len(assets)

    def _delete_everywhere(self, ids_by_topology: Mapping[str, list[str]]) -> None:
        """Delete from every version's collection of each topology, and forget the cache.

        The serving version (the one a backfill reads from) goes first: see the module's
        docstring. The collections are listed at the time of the delete, so one made by a
        rollout started after this worker last read the registry is not missed."""
        for name, ids in ids_by_topology.items():
            serving = self.store.alias_target(self.topologies[name].alias(prefix=self.prefix))
            listed = self.store.collections(f"{self.prefix}{name}__")
            for collection in sorted(listed, key=lambda c: c != serving):  # stable: serving first
                try:
                    self.store.delete(
                        collection, ids, with_parts=self.topologies[name].gives_parts()
                    )
                    self.cache.forget(f"{collection}@{self.store.incarnation(collection)}", ids)
                except SinkError:
                    if collection in self.store.collections(collection):
                        raise
                    # dropped since listed (a version retired): nothing left to delete there

    async def _target(self, topology: Topology, version: str, *, serving: bool) -> _Target | None:
        """The plan and collection of one version (created, and aliased when it serves); None
        when the version is retired, before or just after its collection was ensured."""
        collection = topology.collection_name(version, prefix=self.prefix)
        if await self._retired(topology, version, collection):
            return None
        loop = asyncio.get_running_loop()
        # binding may load a model: not on the event loop, nor on a busy model thread
        plan = await loop.run_in_executor(None, self.plans.get, topology, version)
        try:
            token = await self._io(
                "ensure collection",
                lambda: self.store.ensure_collection(
                    collection,
                    plan.dim,
                    alias=topology.alias(prefix=self.prefix) if serving else None,
                    model_version=version,
                ),
            )
        except SinkError:
            if await self._retired(topology, version, collection):
                return None  # dropped while we created or loaded it
            raise
        # the check after the create, which the module's docstring argues from
        if await self._retired(topology, version, collection):
            return None
        return _Target(version, plan, collection, f"{collection}@{token}")

    async def _retired(self, topology: Topology, version: str, collection: str) -> bool:
        """Whether ``version`` is retired; if so, its collection is dropped (again: this
        worker, holding a view from before the retire, may have just created it anew)."""
        if not await self._io("tombstone lookup", lambda: self.retired(topology, version)):
            return False
        await self._io("drop retired", lambda: self.store.discard(collection))
        if (topology.name, version) not in self._passed_over:
            self._passed_over.add((topology.name, version))
            log.info(
                "not writing to a retired version",
                extra={"topology": topology.name, "version": version, "collection": collection},
            )
        return True

    async def _live_targets(self, topology: Topology) -> list[_Target]:
        """The targets of the versions the registry names, less those retired. A view that
        names none alive is older than a promotion and a retire: it is read once more."""
        for _ in range(2):
            versions = await self._io("versions", lambda: list(self.versions(topology)))
            targets = []
            for version in versions:
                target = await self._target(topology, version, serving=version == versions[0])
                if target is not None:
                    targets.append(target)
            if targets:
                return targets
        raise StreamerError(
            f"every version {topology.name!r} writes to ({versions}) is retired: roll one out"
        )

    async def _upsert(
        self, topology: Topology, assets: Sequence[Asset], report: IngestReport
    ) -> None:
        loop = asyncio.get_running_loop()
        targets = await self._live_targets(topology)
        first = targets[0].plan  # versions share the first stage: fetched once for all

        # sources unchanged since their rows were stored, in every version: not even read
        started = time.perf_counter()
        sources = await loop.run_in_executor(self.runner.cpu_pool, _sources, first, assets)
        keys = [t.cache_key for t in targets]
        unchanged = await self._io(
            "source lookup", lambda: self.changes.unchanged_sources(keys, sources)
        )
        report.timed("dedupe", started)
        report.skipped += len(unchanged) * len(targets)

        todo = [a for a in assets if a.id not in unchanged]
        fetched = await self.runner.run(
            first, [a.source for a in todo], ids=[a.id for a in todo], last=1,
            timings=report.timings, busy=report.busy,
        )  # fmt: skip
        for asset, data in zip(todo, fetched, strict=True):
            if isinstance(data, StageError):
                report.dead_letters.append(dead_letter(asset.record, data))
        # hashing a batch of photos is real work (~1 ms a photo): off the event loop, in slices
        # across the CPU pool (hashlib frees the GIL), so a GPU worker's batch of thousands is
        # not hashed on one core
        slices = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self.runner.cpu_pool,
                    _hashed,
                    todo[start : start + _HASH_SLICE],
                    fetched[start : start + _HASH_SLICE],
                    sources,
                )
                for start in range(0, len(todo), _HASH_SLICE)
            )
        )
        contents = [content for part, _ in slices for content in part]
        blobs = {digest: data for _, part in slices for digest, data in part.items()}
        for i, target in enumerate(targets):
            last = i == len(targets) - 1
            await self._write_unless_retired(topology, target, contents, blobs, report, last=last)

    async def _write_unless_retired(
        self,
        topology: Topology,
        target: _Target,
        contents: Sequence[Content],
        blobs: dict[str, bytes],
        report: IngestReport,
        *,
        last: bool,
    ) -> None:
        """:meth:`_write`, unless the version is retired meanwhile: then what it did counts
        for nothing (no dead letters, no rows), and its collection is dropped."""
        own = IngestReport(timings=report.timings, busy=report.busy)
        try:
            written = await self._write(topology, target, contents, blobs, own, last=last)
        except SinkError:  # a lookup into the collection dropped under us
            if await self._retired(topology, target.version, target.collection):
                return
            raise
        if not written:
            return
        # rows refused because the collection was dropped under the upsert are no dead letters
        if own.dead_letters and await self._retired(topology, target.version, target.collection):
            return
        report.embedded += own.embedded
        report.skipped += own.skipped
        report.reused += own.reused
        report.upserted += own.upserted
        report.dead_letters += own.dead_letters
        report.labels += own.labels

    async def _write(
        self,
        topology: Topology,
        target: _Target,
        contents: Sequence[Content],
        blobs: dict[str, bytes],
        report: IngestReport,
        *,
        last: bool,
    ) -> bool:
        """Everything after the fetch, for one model version's collection; False when the
        version turned out retired before its rows were sent."""
        started = time.perf_counter()
        changes = await self.changes.classify(target.collection, target.cache_key, contents)
        report.timed("dedupe", started)
        report.skipped += len(changes.current)

        fresh, reuse = list(changes.fresh), list(changes.reuse)
        if target.plan.gives_parts:  # a stored vector comes without its parts: embed again
            fresh += [content for content, _ in reuse]
            reuse = []
        # the same new content under several ids in one batch goes through the model once
        firsts: dict[str, Content] = {}
        copies: list[Content] = []
        for content in fresh:
            if content.content_hash in firsts:
                copies.append(content)
            else:
                firsts[content.content_hash] = content
        # on the last target the bytes go to the runner alone, which frees them once decoded
        take = blobs.pop if last else blobs.__getitem__
        parts: dict[int, tuple[Part, ...]] = {}
        outs = await self.runner.run(
            target.plan,
            [take(h) for h in firsts],
            ids=[c.asset.id for c in firsts.values()],
            first=1,
            timings=report.timings,
            busy=report.busy,
            parts=parts,
        )
        vectors: dict[str, Any] = {}
        parts_of: dict[str, tuple[Part, ...]] = {}  # by content hash
        failures: dict[str, StageError] = {}
        for i, (content, out) in enumerate(zip(firsts.values(), outs, strict=True)):
            if isinstance(out, StageError):
                failures[content.content_hash] = out
                report.dead_letters.append(dead_letter(content.asset.record, out))
            else:
                vectors[content.content_hash] = out
                parts_of[content.content_hash] = parts.get(i, ())
        report.embedded += len(vectors)
        for copy in copies:
            if copy.content_hash in vectors:
                reuse.append((copy, vectors[copy.content_hash]))
            else:  # identical content fails identically
                error = failures[copy.content_hash].for_asset(copy.asset.id)
                report.dead_letters.append(dead_letter(copy.asset.record, error))
        report.reused += len(reuse)

        written = [*reuse, *((c, vectors[h]) for h, c in firsts.items() if h in vectors)]
        rows: list[VectorRow] = []
        row_contents: list[Content] = []  # the content of each row
        for content, vector in written:
            own = parts_of.get(content.content_hash, ())
            rows += rows_of(
                content, vector, own, version=target.version, media_type=topology.media_type
            )
            row_contents += [content] * (1 + len(own))
        if rows and await self._retired(topology, target.version, target.collection):
            return False
        attached = (
            await asyncio.get_running_loop().run_in_executor(
                None, self.classifiers, topology.name, target.version
            )
            if rows
            else []
        )
        if attached:
            started = time.perf_counter()
            rows = label_rows(attached, rows)
            report.timed("label", started)
        started = time.perf_counter()
        letters = len(report.dead_letters)
        stored_rows = await self.sink.write(target.collection, rows, row_contents, report)
        # an asset is stored when each of its rows is (a part refused makes it a dead letter)
        refused = {_origin(letter) for letter in report.dead_letters[letters:]}
        stored = list(
            {c.asset.id: c for c in stored_rows if _where(c.asset.record) not in refused}.values()
        )
        if target.plan.gives_parts and stored:
            keep = {
                c.asset.id: [part_id(c.asset.id, p.key) for p in parts_of.get(c.content_hash, ())]
                for c in stored
            }
            await self._io(
                "delete stale parts",
                lambda: self.store.delete_parts(target.collection, list(keep), keep),
            )
        report.timed("sink", started)
        report.upserted += len(stored)
        if attached:
            stored_ids = {c.asset.id for c in stored}
            report.labels += label_events(
                topology.name,
                [r for r, c in zip(rows, row_contents, strict=True) if c.asset.id in stored_ids],
            )
        kept = [*changes.current, *stored]
        key = target.cache_key
        self.cache.put(key, {c.asset.id: c.digest for c in kept})
        self.cache.remember_sources(
            key, {c.asset.id: c.source_digest for c in kept if c.source_digest}
        )
        self.cache.remember_content(key, {c.content_hash: c.asset.id for c in stored})
        return True


def _sources(plan: Plan, assets: Sequence[Asset]) -> dict[str, str]:
    """The source digest of each asset whose source can tell it is unchanged unread."""
    digests: dict[str, str] = {}
    for asset in assets:
        validator = plan.validator(asset.source)
        if validator is not None:
            upload = asset.upload
            digests[asset.id] = source_digest(validator, upload.uri or "", upload.metadata)
    return digests


def _hashed(
    assets: Sequence[Asset], fetched: Sequence[Any], sources: Mapping[str, str]
) -> tuple[list[Content], dict[str, bytes]]:
    """The fetched assets with their content hash and digests, and the bytes by content hash
    (assets whose fetch failed are left out)."""
    contents: list[Content] = []
    blobs: dict[str, bytes] = {}
    for asset, data in zip(assets, fetched, strict=True):
        if isinstance(data, StageError):
            continue
        digest = content_hash(data)
        blobs[digest] = data
        upload = asset.upload
        row = row_digest(digest, upload.uri or "", upload.metadata)
        contents.append(Content(asset, digest, row, sources.get(asset.id, "")))
    return contents, blobs


def _origin(letter: DeadLetter) -> tuple[str, int, int]:
    return (letter.source_topic, letter.source_partition, letter.source_offset)


def _where(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def _first_per_record(letters: list[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per consumed record, even when several versions refused it."""
    seen: set[tuple[str, int, int]] = set()
    unique = []
    for letter in letters:
        where = _origin(letter)
        if where not in seen:
            seen.add(where)
            unique.append(letter)
    return unique
