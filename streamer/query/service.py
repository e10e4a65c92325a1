"""The query path: search requests in, one answer each, many requests served by one search.

Requests taken together (the coalescing window) are validated one by one; their queries run
through their topology's plan in one runner call per model version (the same stages as
ingest: fetch, decode, embed, normalize), and every group that shares a collection and a
filter is answered by one Milvus search with as many query vectors as requests. A request that
cannot be answered gets a result whose ``error`` says why: never silence.

Every result carries its :class:`~streamer.core.messages.SearchHops`: when its request was
received, taken, searched and answered, so a round trip can be split into where its time went.
Where to search (an alias's collection) is looked up once per batch, while the batch already
searches where the last lookup pointed (see :meth:`SearchService._run`): each lookup is Milvus
round trips, and they were milliseconds of every answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from streamer.core.errors import QueryError, StageError
from streamer.core.messages import Hit, SearchHops, SearchRequest, SearchResult, infer_media_type
from streamer.core.retry import retry_blocking
from streamer.core.stats import Stats
from streamer.query.filters import build_filter
from streamer.runner.operator import Source
from streamer.runner.plan import Plan
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.storage.store import VectorStore

__all__ = ["Answer", "SearchService", "embedding_topology"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """One result and the topic it goes to."""

    reply_to: str
    result: SearchResult

    def key(self) -> bytes:
        return self.result.request_id.encode()

    def value(self, *, replied_ms: float | None = None) -> bytes:
        """The result's bytes; ``replied_ms``, when the answer is sent, completes its hops."""
        result = self.result
        if replied_ms is not None and result.hops is not None:
            hops = result.hops.model_copy(update={"replied_ms": round(replied_ms, 3)})
            result = result.model_copy(update={"hops": hops})
        return result.model_dump_json().encode()


#: a query's topology name and requested version (None: the alias's)
_Key = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a query searches: a collection, and the model version it was created for."""

    collection: str
    model_version: str | None


@dataclass(slots=True)
class _Query:
    index: int
    request: SearchRequest
    topology: Topology
    collection: str = ""
    model_version: str | None = None
    filter_expr: str = ""
    vector: npt.NDArray[np.float32] | None = None
    hits: list[Hit] = field(default_factory=list)
    search_started_ms: float | None = None
    search_ended_ms: float | None = None
    #: the topology and version that embed the query: the searched ones, or for a query of
    #: another medium (a photo searching videos), a topology of that medium in the same space
    embedder: Topology | None = None
    embed_version: str | None = None

    @property
    def key(self) -> _Key:
        return (self.topology.name, self.request.version)

    @property
    def version(self) -> str:
        """The model version of the collection that answers."""
        return self.model_version or self.topology.model_version

    @property
    def source(self) -> Source:
        request = self.request
        return Source(text=request.text) if request.text is not None else Source(uri=request.uri)


class SearchService:
    def __init__(
        self,
        *,
        topologies: Sequence[Topology],
        plans: Plans,
        runner: Runner,
        store: VectorStore,
        stats: Stats,
        default_reply_to: str,
        max_top_k: int = 100,
        collection_prefix: str = "",
        max_retry_pause_s: float = 30.0,
    ) -> None:
        self.topologies = {t.name: t for t in topologies}
        self.by_media: dict[str, Topology] = {}
        for topology in topologies:  # a media type's first topology answers by default
            self.by_media.setdefault(topology.media_type, topology)
        self.plans = plans
        self.runner = runner
        self.store = store
        self.stats = stats
        self.default_reply_to = default_reply_to
        self.max_top_k = max_top_k
        self.prefix = collection_prefix
        self.max_retry_pause_s = max_retry_pause_s
        self._targets: dict[_Key, _Target] = {}  # the last lookups: the next batch's guesses
        self._search_calls = 0  # since the stats were last counted

    def reply_allowed(self, topic: str) -> bool:
        """Answers go to the results topic or its ``<results>.<suffix>`` children only, so a
        request can never write into another topic (``media.uploads``, say)."""
        base = self.default_reply_to
        return topic == base or (topic.startswith(f"{base}.") and len(topic) <= 249)

    async def answer(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        *,
        received_ms: Sequence[float] | None = None,
    ) -> list[Answer]:
        """One answer per request value, in order. ``received_ms``: when the worker got each
        request (wall clock, ms), for the answers' hops; default: now."""
        started = time.perf_counter()
        taken_ms = time.time() * 1000
        arrived = list(received_ms) if received_ms is not None else [taken_ms] * len(values)
        answers: list[Answer | None] = [None] * len(values)
        queries: list[_Query] = []
        for i, (value, key) in enumerate(zip(values, keys, strict=True)):
            try:
                queries.append(self._validate(i, value))
            except QueryError as exc:
                request_id, reply_to = _identify(value, key, self.default_reply_to)
                if not self.reply_allowed(reply_to):
                    reply_to = self.default_reply_to
                hops = SearchHops(received_ms=round(arrived[i], 3), taken_ms=round(taken_ms, 3))
                result = SearchResult(request_id=request_id, error=str(exc), hops=hops)
                answers[i] = Answer(reply_to, result)

        failed = await self._run(queries)
        took_ms = (time.perf_counter() - started) * 1000
        for query in queries:
            error = failed.get(query.index)
            result = SearchResult(
                request_id=query.request.request_id,
                hits=[] if error else query.hits,
                topology=query.topology.name,
                model_version=query.model_version,
                took_ms=round(took_ms, 2),
                error=error,
                hops=SearchHops(
                    sent_ms=query.request.sent_ms,
                    received_ms=round(arrived[query.index], 3),
                    taken_ms=round(taken_ms, 3),
                    search_started_ms=query.search_started_ms,
                    search_ended_ms=query.search_ended_ms,
                ),
            )
            answers[query.index] = Answer(query.request.reply_to, result)
        # one Redis round trip per batch, not one more per Milvus search: the answers wait
        calls, self._search_calls = self._search_calls, 0
        self.stats.add({"search_requests": len(values), "search_calls": calls})
        return [a for a in answers if a is not None]

    def _validate(self, index: int, value: bytes | None) -> _Query:
        try:
            data = json.loads(value or b"")
        except ValueError as exc:
            raise QueryError(f"request is not UTF-8 JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise QueryError("request must be a JSON object")
        data.setdefault("reply_to", self.default_reply_to)
        try:
            request = SearchRequest.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise QueryError(f"invalid request: {problems}") from exc
        if not self.reply_allowed(request.reply_to):
            raise QueryError(
                f"reply_to {request.reply_to!r} is not allowed: use {self.default_reply_to!r} "
                f"or {self.default_reply_to}.<suffix>"
            )
        given = [n for n in ("text", "uri", "vector") if getattr(request, n) is not None]
        if len(given) != 1:
            raise QueryError(f"give exactly one of text, uri or vector (got {given or 'none'})")
        if request.top_k > self.max_top_k:
            raise QueryError(f"top_k {request.top_k} is over the limit of {self.max_top_k}")
        topology = self._topology(request)
        query = _Query(index, request, topology)
        query.filter_expr = build_filter(request.filter, topology.metadata_fields)
        if request.vector is not None:
            query.vector = _unit(request.vector)
        return query

    def _topology(self, request: SearchRequest) -> Topology:
        if request.topology is not None:
            if request.topology not in self.topologies:
                raise QueryError(
                    f"unknown topology {request.topology!r}; served: {sorted(self.topologies)}"
                )
            return self.topologies[request.topology]
        if request.vector is not None:
            raise QueryError("a vector query must name its topology")
        kind = infer_media_type(request.uri, request.text)
        if kind is None or kind not in self.by_media:
            raise QueryError("cannot tell which topology serves this query; set 'topology'")
        return self.by_media[kind]

    async def _run(self, queries: list[_Query]) -> dict[int, str]:
        """Look up where to search, embed and search; returns the errors of the queries that
        failed.

        Where a query searches (its alias's collection and that collection's model version)
        takes Milvus round trips to learn, milliseconds on every answer. So a batch searches
        where the last lookup pointed while it looks again, and searches again, where the
        lookup points now, for the queries whose target moved in between (a promotion or a
        rollback). An answer thus never comes from a target older than its own batch.
        """
        topologies = {q.key: q.topology for q in queries}
        lookups = {
            key: asyncio.create_task(self._lookup(topology, key[1]))
            for key, topology in topologies.items()
        }
        guessed: dict[_Key, _Target | QueryError] = {
            key: self._targets[key] for key in lookups if key in self._targets
        }
        if len(guessed) < len(lookups):  # nothing to guess from: wait for the lookups
            return await self._search_at(queries, await self._settle(lookups))
        try:
            failed = await self._search_at(queries, guessed)
        except BaseException:
            for lookup in lookups.values():
                lookup.cancel()
            raise
        looked_up = await self._settle(lookups)
        moved = [q for q in queries if looked_up[q.key] != guessed[q.key]]
        for query in moved:
            failed.pop(query.index, None)
            query.hits = []
            if query.request.vector is None:
                query.vector = None  # embedded by the model of the old target's version
        if moved:
            failed.update(await self._search_at(moved, looked_up))
        return failed

    async def _settle(
        self, lookups: dict[_Key, asyncio.Task[_Target]]
    ) -> dict[_Key, _Target | QueryError]:
        """The lookups' outcomes, remembered as the next batch's guesses."""
        outcomes = await asyncio.gather(*lookups.values(), return_exceptions=True)
        settled: dict[_Key, _Target | QueryError] = {}
        for key, outcome in zip(lookups, outcomes, strict=True):
            if isinstance(outcome, QueryError):
                self._targets.pop(key, None)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self._targets[key] = outcome
            settled[key] = outcome
        return settled

    async def _search_at(
        self, queries: list[_Query], targets: dict[_Key, _Target | QueryError]
    ) -> dict[int, str]:
        """Embed and search ``queries`` at their targets; returns the errors by query index."""
        failed: dict[int, str] = {}
        loop = asyncio.get_running_loop()
        for query in queries:
            target = targets[query.key]
            if isinstance(target, QueryError):
                failed[query.index] = str(target)
                continue
            query.collection, query.model_version = target.collection, target.model_version
            topology = query.topology
            if query.vector is None and query.version not in topology.versions():
                failed[query.index] = (
                    f"version {query.version!r} of {topology.name!r} is not declared by this "
                    f"worker's topology ({list(topology.versions())}); send a vector instead"
                )
            elif query.vector is None:
                try:
                    query.embedder, query.embed_version = self._embedder(query)
                except QueryError as exc:
                    failed[query.index] = str(exc)
        live = [q for q in queries if q.index not in failed]

        by_model: dict[tuple[str, str], list[_Query]] = {}
        for query in live:
            if query.vector is None and query.embedder is not None:
                embedded_by = (query.embedder.name, query.embed_version or query.version)
                by_model.setdefault(embedded_by, []).append(query)
        for group in by_model.values():
            failed.update(await self._embed(group))

        groups: dict[tuple[str, str, int], list[_Query]] = {}
        dims: dict[tuple[str, str], int] = {}
        for query in live:
            if query.index in failed or query.vector is None:
                continue
            if query.version in query.topology.versions():
                model = (query.topology.name, query.version)
                if model not in dims:  # one executor hop per model, not per query
                    searched = functools.partial(self.plans.get, query.topology, query.version)
                    dims[model] = (await loop.run_in_executor(None, searched)).dim
                if query.vector.size != dims[model]:
                    failed[query.index] = (
                        f"vector must have {dims[model]} dimensions, not {query.vector.size}"
                    )
                    continue
            key = (query.collection, query.filter_expr, query.vector.size)
            groups.setdefault(key, []).append(query)
        for (collection, filter_expr, _), group in groups.items():
            error = await self._search(collection, filter_expr, group)
            if error is not None:
                failed.update({q.index: error for q in group})
        return failed

    async def _io(self, what: str, fn: Any) -> Any:
        return await retry_blocking(what, fn, max_pause_s=self.max_retry_pause_s)

    async def _lookup(self, topology: Topology, version: str | None) -> _Target:
        """The collection of ``version`` (default: the alias's target) and its model version."""
        if version is None:
            alias = topology.alias(prefix=self.prefix)
            target = await self._io("alias", lambda: self.store.alias_target(alias))
            if target is None:
                raise QueryError(f"topology {topology.name!r} has nothing indexed yet")
            collection = str(target)
        else:
            collection = topology.collection_name(version, prefix=self.prefix)
            exists = await self._io("collections", lambda: self.store.collections(collection))
            if collection not in exists:
                raise QueryError(f"topology {topology.name!r} has no version {version!r}")
        model_version = await self._io("describe", lambda: self.store.model_version(collection))
        return _Target(collection, model_version)

    def _plan(self, query: _Query) -> Plan:
        """The plan that embeds the query: that of the version that answers, or of the
        topology of the query's medium in the same space (bound on first use)."""
        if query.embedder is not None:
            return self.plans.get(query.embedder, query.embed_version)
        return self.plans.get(query.topology, query.version)

    def _embedder(self, query: _Query) -> tuple[Topology, str]:
        """Which topology and version embed ``query``: see :func:`embedding_topology`."""
        kind = infer_media_type(query.request.uri, query.request.text)
        return embedding_topology(self.topologies.values(), query.topology, query.version, kind)

    async def _embed(self, group: list[_Query]) -> dict[int, str]:
        """Run one version's queries through its plan; returns the errors by query index."""
        loop = asyncio.get_running_loop()
        try:
            plan = await loop.run_in_executor(None, self._plan, group[0])
        except Exception as exc:
            return {q.index: f"query model unavailable: {type(exc).__name__}: {exc}" for q in group}
        outs = await self.runner.run(
            plan, [q.source for q in group], ids=[q.request.request_id for q in group]
        )
        errors: dict[int, str] = {}
        for query, out in zip(group, outs, strict=True):
            if isinstance(out, StageError):
                errors[query.index] = f"query {out.stage} failed: {out.cause}"
            else:
                query.vector = out
        return errors

    async def _search(self, collection: str, filter_expr: str, group: list[_Query]) -> str | None:
        vectors = np.stack([q.vector for q in group if q.vector is not None])
        limit = max(q.request.top_k for q in group)
        started_ms = round(time.time() * 1000, 3)
        try:
            results = await self._io(
                "search",
                lambda: self.store.search(
                    collection, vectors, top_k=limit, filter_expr=filter_expr
                ),
            )
        except StageError as exc:
            return f"search failed: {exc.cause}"
        finally:
            ended_ms = round(time.time() * 1000, 3)
            for query in group:
                query.search_started_ms, query.search_ended_ms = started_ms, ended_ms
        self._search_calls += 1
        for query, hits in zip(group, results, strict=True):
            query.hits = [
                Hit(id=h.id, score=h.score, uri=h.uri, metadata=h.metadata)
                for h in hits[: query.request.top_k]
            ]
        return None


def embedding_topology(
    served: Iterable[Topology], topology: Topology, version: str, kind: str | None
) -> tuple[Topology, str]:
    """Which topology and version embed a query of medium ``kind`` that searches ``version``
    of ``topology``: those, when the query is of its medium (or of none); else one of
    ``served`` of the query's medium whose version shares the searched version's embedding
    space. Raises :class:`QueryError` naming the space when none does."""
    if kind is None or kind == topology.media_type:
        return topology, version
    space = topology.space_of(version)
    if space is not None:
        for other in served:
            if other.media_type != kind:
                continue
            for candidate in other.versions():
                if other.space_of(candidate) == space:
                    return other, candidate
    article = "an" if kind[0] in "aeiou" else "a"
    raise QueryError(
        f"{article} {kind} query cannot search {topology.name!r} ({version}): no {kind} "
        f"topology served here embeds into its space ({space or 'its own'})"
    )


def _unit(values: list[float]) -> npt.NDArray[np.float32]:
    vector = np.asarray(values, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise QueryError("vector must be a non-empty list of finite numbers")
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not math.isfinite(norm):
        raise QueryError("vector must not be all zeros")
    return vector / norm


def _identify(value: bytes | None, key: bytes | None, default_reply_to: str) -> tuple[str, str]:
    """The request id and reply topic of a request that failed validation, where known."""
    request_id = key.decode(errors="replace") if key else ""
    reply_to = default_reply_to
    try:
        data = json.loads(value or b"")
    except ValueError:
        return request_id, reply_to
    if isinstance(data, dict):
        if isinstance(data.get("request_id"), str) and data["request_id"]:
            request_id = data["request_id"]
        if isinstance(data.get("reply_to"), str):
            reply_to = data["reply_to"]
    return request_id, reply_to
