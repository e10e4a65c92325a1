"""The ingest path of one micro-batch, independent of Kafka: records in, rows and dead letters out.

For each batch: validate every message; keep the last message per asset id; apply deletes to
every version's collection; for upserts, per topology, fetch and hash the content, skip assets
whose stored row is already current (Redis first, the vector store when Redis does not know),
reuse the stored vector when only metadata changed, decode and embed the rest in batches of
the topology's policy, and upsert. A dependency that is down is retried until it answers, so
the caller only acknowledges a batch the vector store has acknowledged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from operators.fetch import Fetcher
from streamer.ingest.dedupe import DedupeCache, content_hash, row_digest, source_digest
from streamer.models.embedders import Embedder, EmbedderPool
from streamer.core.errors import (
    DecodeError,
    EmbedError,
    FetchError,
    InvalidMessage,
    SinkError,
    StageError,
    TransientError,
)
from streamer.core.messages import DeadLetter, UploadMessage, parse_upload
from streamer.core.stats import Stats
from streamer.storage.store import StoredRow, VectorRow, VectorStore
from topologies.base import BatchPolicy, Topology

__all__ = ["IngestPipeline", "IngestReport", "Record", "attempts_header", "retry_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    attempts: int = 0  # how often it failed before (a replayed dead letter carries its count)


def attempts_header(headers: Any) -> int:
    """The ``x-attempts`` of a record's headers (a mapping or a list of pairs), else 0."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for name, value in pairs:
        if name == "x-attempts":
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


@dataclass(slots=True)
class IngestReport:
    received: int = 0
    embedded: int = 0
    skipped: int = 0
    reused: int = 0
    upserted: int = 0
    deleted: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def timed(self, stage: str, started: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "reused": self.reused,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "dead_lettered": len(self.dead_letters),
        }


@dataclass(slots=True)
class _Item:
    record: Record
    upload: UploadMessage
    data: bytes = b""
    content_hash: str = ""
    digest: str = ""
    prepared: Any = None
    vector: Any = None
    source: str = ""  # digest of the source's validator, uri and metadata (when it has one)


@dataclass(frozen=True, slots=True)
class _Target:
    version: str
    embedder: Embedder
    collection: str
    cache_key: str


async def retry_transient(
    what: str, fn: Callable[[], Awaitable[T]], *, max_pause_s: float = 30.0
) -> T:
    """Await ``fn`` until no :class:`TransientError` comes back; pauses grow to ``max_pause_s``."""
    pause, attempt = 0.5, 0
    while True:
        try:
            return await fn()
        except TransientError as exc:
            attempt += 1
            log.warning("%s: %s; attempt %d, retrying in %.1fs", what, exc, attempt, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, max_pause_s)


class IngestPipeline:
    def __init__(
        self,
        *,
        topologies: Sequence[Topology],
        embedders: EmbedderPool,
        store: VectorStore,
        cache: DedupeCache,
        fetcher: Fetcher,
        stats: Stats,
        decode_pool: Executor,
        model_pool: Executor,
        policies: Mapping[str, BatchPolicy] | None = None,
        collection_prefix: str = "",
        max_retry_pause_s: float = 30.0,
        versions: Callable[[Topology], Sequence[str]] | None = None,
    ) -> None:
        """``versions`` says which model versions a topology's rows are written to (serving,
        and during a rollout the candidate and the previous one); default: the declared one."""
        self.topologies = {t.name: t for t in topologies}
        self.by_media = {t.media_type: t for t in topologies}
        self.embedders = embedders
        self.store = store
        self.cache = cache
        self.fetcher = fetcher
        self.stats = stats
        self.decode_pool = decode_pool
        self.model_pool = model_pool
        self.policies = dict(policies or {t.name: t.batch for t in topologies})
        self.prefix = collection_prefix
        self.max_retry_pause_s = max_retry_pause_s
        self.versions = versions or (lambda topology: [topology.model_version])

    def chunk_size(self, topology: Topology, version: str | None = None) -> int:
        """Items per model call: the calibrated size of the loaded model, else the policy's."""
        calibrated = self.embedders.batch_size(topology, version)
        return calibrated or self.policies.get(topology.name, topology.batch).max_batch_size

    def collection(self, topology: Topology, version: str | None = None) -> str:
        return topology.collection_name(version, prefix=self.prefix)

    async def _io(self, what: str, fn: Callable[[], T]) -> T:
        """Run blocking store work in a thread, retrying while the store is unavailable."""
        loop = asyncio.get_running_loop()
        return await retry_transient(
            what,
            lambda: loop.run_in_executor(None, fn),
            max_pause_s=self.max_retry_pause_s,
        )

    async def process(self, records: Sequence[Record]) -> IngestReport:
        report = IngestReport(received=len(records))
        latest: dict[str, _Item] = {}
        for record in records:
            try:
                upload = parse_upload(record.value)
            except InvalidMessage as exc:
                report.dead_letters.append(self._dead(record, exc))
                continue
            if upload.op == "upsert" and upload.kind not in self.by_media:
                unrouted = InvalidMessage(
                    f"media_type {upload.kind!r} has no topology on this worker", asset_id=upload.id
                )
                report.dead_letters.append(self._dead(record, unrouted))
                continue
            latest.pop(upload.id, None)  # a later message for the same id supersedes
            latest[upload.id] = _Item(record, upload)

        deletes = [i for i in latest.values() if i.upload.op == "delete"]
        if deletes:
            report.deleted += await self._delete(deletes)
        groups: dict[str, list[_Item]] = {}
        for item in latest.values():
            if item.upload.op == "upsert":
                groups.setdefault(self.by_media[item.upload.kind].name, []).append(item)
        for name, items in groups.items():
            await self._upsert(self.topologies[name], items, report)
        report.dead_letters = _first_per_record(report.dead_letters)
        self.stats.add(report.counts())
        return report

    def _dead(self, record: Record, error: StageError) -> DeadLetter:
        log.warning(
            "dead letter: %s (topic=%s partition=%d offset=%d)",
            error,
            record.topic,
            record.partition,
            record.offset,
        )
        return DeadLetter.from_error(
            error,
            value=record.value or b"",
            key=record.key,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=record.attempts + 1,
        )

    async def _delete(self, items: Sequence[_Item]) -> int:
        ids_by_topology: dict[str, list[str]] = {}
        for item in items:
            kind = item.upload.media_type
            targets = [self.by_media[kind]] if kind in self.by_media else self.topologies.values()
            for topology in targets:
                ids_by_topology.setdefault(topology.name, []).append(item.upload.id)
        await self._io("delete", lambda: self._delete_everywhere(ids_by_topology))
        return len(items)

    def _delete_everywhere(self, ids_by_topology: Mapping[str, list[str]]) -> None:
        """Delete from every version's collection of each topology, and forget the cache."""
        for name, ids in ids_by_topology.items():
            for collection in self.store.collections(f"{self.prefix}{name}__"):
                self.store.delete(collection, ids)
                self.cache.forget(f"{collection}@{self.store.incarnation(collection)}", ids)

    async def _upsert(self, topology: Topology, items: list[_Item], report: IngestReport) -> None:
        loop = asyncio.get_running_loop()
        versions = await self._io("versions", lambda: list(self.versions(topology)))
        targets = [
            await self._target(topology, version, serving=version == versions[0])
            for version in versions
        ]
        started = time.perf_counter()
        # sources unchanged since their rows were stored, in every version: not even read
        await loop.run_in_executor(self.decode_pool, self._source_digests, items)
        unchanged = await self._io("source lookup", lambda: self._unchanged(targets, items))
        report.skipped += len(unchanged) * len(targets)
        todo = [item for item in items if item.upload.id not in unchanged]
        fetched = await asyncio.gather(
            *(loop.run_in_executor(self.decode_pool, self._fetch, item) for item in todo)
        )
        live: list[_Item] = []
        for item, error in zip(todo, fetched, strict=True):
            if error is None:
                live.append(item)
            else:
                report.dead_letters.append(self._dead(item.record, error))
        report.timed("fetch", started)
        for target in targets:
            copies = [dataclasses.replace(item) for item in live]
            await self._write(topology, target, copies, report)

    async def _target(self, topology: Topology, version: str, *, serving: bool) -> _Target:
        """The model and collection of one version (created, and aliased when it serves)."""
        loop = asyncio.get_running_loop()
        # not on the model thread: it may be busy with another batch's chunks
        embedder = await loop.run_in_executor(None, self.embedders.get, topology, version)
        collection = self.collection(topology, version)
        token = await self._io(
            "ensure collection",
            lambda: self.store.ensure_collection(
                collection,
                embedder.dim,
                alias=topology.alias(prefix=self.prefix) if serving else None,
                model_version=version,
            ),
        )
        return _Target(version, embedder, collection, f"{collection}@{token}")

    def _source_digests(self, items: Sequence[_Item]) -> None:
        for item in items:
            upload = item.upload
            validator = self.fetcher.validator(upload.uri) if upload.uri else None
            if validator is not None:
                item.source = source_digest(validator, upload.uri or "", upload.metadata)

    def _unchanged(self, targets: Sequence[_Target], items: Sequence[_Item]) -> set[str]:
        """Ids whose source digest matches the one recorded with the stored row everywhere."""
        candidates = {i.upload.id: i.source for i in items if i.source}
        for target in targets:
            if not candidates:
                break
            known = self.cache.sources(target.cache_key, list(candidates))
            candidates = {k: v for k, v in candidates.items() if known.get(k) == v}
        return set(candidates)

    async def _write(
        self, topology: Topology, target: _Target, live: list[_Item], report: IngestReport
    ) -> None:
        """Everything after the fetch, for one model version's collection."""
        loop = asyncio.get_running_loop()
        version, embedder = target.version, target.embedder
        collection, cache_key = target.collection, target.cache_key

        started = time.perf_counter()
        current, reuse, fresh = await self._classify(collection, cache_key, live)
        report.timed("dedupe", started)
        report.skipped += len(current)

        # the same new content under several ids in one batch goes through the model once
        firsts: dict[str, _Item] = {}
        copies: list[_Item] = []
        for item in fresh:
            if item.content_hash in firsts:
                copies.append(item)
            else:
                firsts[item.content_hash] = item
        # decode runs ahead in the pool while the model takes the chunks already decoded
        decoding = [
            loop.run_in_executor(self.decode_pool, self._prepare, embedder, item)
            for item in firsts.values()
        ]
        pending = list(firsts.values())
        size = self.chunk_size(topology, version)
        failures: dict[str, StageError] = {}
        embedded: list[_Item] = []

        async def embed_chunk(start: int) -> None:
            started = time.perf_counter()
            errors = await asyncio.gather(*decoding[start : start + size])
            report.timed("decode", started)
            chunk: list[_Item] = []
            for item, error in zip(pending[start : start + size], errors, strict=True):
                if error is None:
                    chunk.append(item)
                else:
                    failures[item.content_hash] = error
                    report.dead_letters.append(self._dead(item.record, error))
            if not chunk:
                return
            started = time.perf_counter()
            ok, failed = await loop.run_in_executor(self.model_pool, self._embed, embedder, chunk)
            report.timed("embed", started)
            embedded.extend(ok)
            for item, error in failed:
                failures[item.content_hash] = error
                report.dead_letters.append(self._dead(item.record, error))

        # each chunk goes to the model as soon as it is decoded; the model pool runs as many
        # at once as the worker has model streams
        await asyncio.gather(*(embed_chunk(start) for start in range(0, len(pending), size)))
        report.embedded += len(embedded)
        vectors = {i.content_hash: i.vector for i in embedded}
        for copy in copies:
            if copy.content_hash in vectors:
                copy.vector = vectors[copy.content_hash]
                reuse.append(copy)
            else:  # identical content fails identically
                error = failures[copy.content_hash].for_asset(copy.upload.id)
                report.dead_letters.append(self._dead(copy.record, error))
        report.reused += len(reuse)

        rows = [self._row(version, topology.media_type, item) for item in [*reuse, *embedded]]
        started = time.perf_counter()
        stored = await self._sink(collection, rows, [*reuse, *embedded], report)
        report.timed("sink", started)
        report.upserted += len(stored)
        self.cache.put(cache_key, {i.upload.id: i.digest for i in [*current, *stored]})
        self.cache.remember_sources(
            cache_key, {i.upload.id: i.source for i in [*current, *stored] if i.source}
        )
        self.cache.remember_content(cache_key, {i.content_hash: i.upload.id for i in stored})

    def _fetch(self, item: _Item) -> StageError | None:
        upload = item.upload
        try:
            if upload.text is not None:
                item.data = upload.text.encode()
            else:
                assert upload.uri is not None
                item.data = self.fetcher.fetch(upload.uri)
        except StageError as exc:
            return exc.for_asset(upload.id)
        except Exception as exc:  # an unforeseen failure is this item's, never the worker's
            return FetchError(f"{type(exc).__name__}: {exc}", asset_id=upload.id)
        item.content_hash = content_hash(item.data)
        item.digest = row_digest(item.content_hash, upload.uri or "", upload.metadata)
        return None

    async def _classify(
        self, collection: str, cache_key: str, items: list[_Item]
    ) -> tuple[list[_Item], list[_Item], list[_Item]]:
        """Split into (stored row current, same content stored, needs the model)."""
        known = self.cache.get(cache_key, [i.upload.id for i in items])
        current = [i for i in items if known.get(i.upload.id) == i.digest]
        unknown = [i for i in items if known.get(i.upload.id) != i.digest]
        if not unknown:
            return current, [], []
        ids = [i.upload.id for i in unknown]
        stored: dict[str, StoredRow] = await self._io(
            "dedupe lookup", lambda: self.store.fetch(collection, ids)
        )
        holders: dict[str, str] = {}  # item id -> the id of a stored row with its content
        new_content: list[_Item] = []
        for item in unknown:
            row = stored.get(item.upload.id)
            if row is not None and row.content_hash == item.content_hash:
                if row_digest(row.content_hash, row.uri, row.metadata) == item.digest:
                    current.append(item)
                else:
                    holders[item.upload.id] = item.upload.id
            else:
                new_content.append(item)
        # content already stored under another id (known to Redis only: a miss costs a model
        # call, never correctness)
        seen = self.cache.holders(cache_key, [i.content_hash for i in new_content])
        fresh: list[_Item] = []
        for item in new_content:
            if item.content_hash in seen:
                holders[item.upload.id] = seen[item.content_hash]
            else:
                fresh.append(item)
        reuse: list[_Item] = []
        if holders:
            wanted = list(dict.fromkeys(holders.values()))
            rows = await self._io(
                "vector lookup", lambda: self.store.fetch(collection, wanted, with_vectors=True)
            )
            for item in unknown:
                if item.upload.id not in holders:
                    continue
                row = rows.get(holders[item.upload.id])
                if (
                    row is not None
                    and row.vector is not None
                    and row.content_hash == item.content_hash
                ):
                    item.vector = row.vector
                    reuse.append(item)
                else:
                    fresh.append(item)  # the holder was deleted or changed: embed anew
        return current, reuse, fresh

    def _prepare(self, embedder: Embedder, item: _Item) -> StageError | None:
        try:
            item.prepared = embedder.prepare(item.data)
        except StageError as exc:
            return exc.for_asset(item.upload.id)
        except Exception as exc:  # an unforeseen failure is this item's, never the worker's
            return DecodeError(f"{type(exc).__name__}: {exc}", asset_id=item.upload.id)
        item.data = b""  # the bytes are no longer needed; keep batches small in memory
        return None

    def _embed(
        self, embedder: Embedder, chunk: list[_Item]
    ) -> tuple[list[_Item], list[tuple[_Item, StageError]]]:
        """Embed a chunk; if the chunk fails, embed item by item so one bad item is isolated."""
        try:
            vectors = embedder.embed([i.prepared for i in chunk])
        except Exception as exc:  # a model error must not fail the whole batch
            if len(chunk) == 1:
                cause = exc.cause if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"
                return [], [(chunk[0], EmbedError(cause, asset_id=chunk[0].upload.id))]
            ok: list[_Item] = []
            failed: list[tuple[_Item, StageError]] = []
            for item in chunk:
                one_ok, one_failed = self._embed(embedder, [item])
                ok.extend(one_ok)
                failed.extend(one_failed)
            return ok, failed
        for item, vector in zip(chunk, vectors, strict=True):
            item.vector = vector
            item.prepared = None
        return chunk, []

    def _row(self, version: str, media_type: str, item: _Item) -> VectorRow:
        upload = item.upload
        return VectorRow(
            id=upload.id,
            vector=item.vector,
            content_hash=item.content_hash,
            model_version=version,
            media_type=media_type,
            uri=upload.uri or "",
            text=upload.text or "",
            metadata=upload.metadata,
        )

    async def _sink(
        self, collection: str, rows: list[VectorRow], items: list[_Item], report: IngestReport
    ) -> list[_Item]:
        """Upsert rows; a permanent rejection is isolated to its rows, which go to dead letters."""
        if not rows:
            return []
        try:
            await self._io("upsert", lambda: self.store.upsert(collection, rows))
            return items
        except SinkError as exc:
            if len(rows) == 1:
                report.dead_letters.append(self._dead(items[0].record, exc.for_asset(rows[0].id)))
                return []
        stored: list[_Item] = []
        for row, item in zip(rows, items, strict=True):
            stored.extend(await self._sink(collection, [row], [item], report))
        return stored


def _first_per_record(letters: list[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per consumed record, even when several versions refused it."""
    seen: set[tuple[str, int, int]] = set()
    unique = []
    for letter in letters:
        where = (letter.source_topic, letter.source_partition, letter.source_offset)
        if where not in seen:
            seen.add(where)
            unique.append(letter)
    return unique
