"""The Milvus sink: one collection per topology and model version, an alias per topology.

Rows keep the asset id (primary key, so a re-delivery overwrites instead of duplicating), the
uri or inline text, the content hash, the model version and the metadata: enough to backfill a
new model version from what is stored. Vectors are unit length; the metric is inner product.

The same code serves milvus-lite and a Milvus server; where the server differs:

consistency  milvus-lite reads its own writes; a server answers at a collection's default level
             (Bounded: writes of the last few seconds unseen). The lookups the ingest path and
             rollouts rely on (read_rows, count, ids) read Strong; collections are created
             Strong so that query iterators, which take no per-call level, are too. Searches
             use ``MilvusSettings.consistency_level`` (Strong costs a time tick per search).
load         a server serves only loaded collections; after a restart it loads them again
             itself, slowly, and calls meet "not loaded" meanwhile (milvus-lite forgets loads).
             A call that meets a released collection loads it and is retried once.
flush        a server seals segments itself (``flush_rows=0`` suits it); a flush is never
             needed to read a write.
aliases      Milvus >= 2.4 refuses to drop a collection an alias points at; ``drop`` removes
             those aliases first, as milvus-lite and older servers do themselves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import grpc
import numpy as np
import numpy.typing as npt
from pymilvus import CollectionSchema, DataType, MilvusClient, MilvusException

from streamer.config.logs import adopt_pymilvus_loggers
from streamer.config.settings import MilvusSettings
from streamer.core.errors import SinkError, TransientError
from streamer.storage.upsert_request import upsert_request

adopt_pymilvus_loggers()  # pymilvus set its loggers up on import, over ours

__all__ = [
    "PART_OF",
    "SearchHit",
    "StoredRow",
    "VectorRow",
    "VectorStore",
    "collection_schema",
    "escape_literal",
    "id_filter",
    "not_id_filter",
    "part_id",
    "parts_filter",
    "row_bytes",
    "upsert_chunks",
    "with_parts",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

ID_MAX_CHARS = 512
URI_MAX_BYTES = 16_384
TEXT_MAX_BYTES = 65_535
QUERY_CHUNK = 500
# read-your-writes: every write acknowledged before the call is seen by it
READ_YOUR_WRITES = "Strong"
INCARNATION = "streamer.incarnation"
MODEL_VERSION = "streamer.model_version"
# per row on the wire besides its values: protobuf tags and lengths, the int64 updated_ms
ROW_OVERHEAD_BYTES = 64
#: the metadata key of a part's row (a video's segment) naming the asset it is part of
PART_OF = "segment_of"
# assets per delete of parts: a filter of one clause per asset (JSON fields take no `in`)
PARTS_CHUNK = 64


def escape_literal(value: str) -> str:
    """A Milvus string literal that no value can break out of."""
    if any(ord(c) < 32 for c in value):
        raise SinkError(f"control characters are not allowed in filter values: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_filter(ids: Iterable[str]) -> str:
    return f"id in [{', '.join(escape_literal(i) for i in ids)}]"


def not_id_filter(ids: Iterable[str]) -> str:
    """Every id but ``ids`` (``id not in``: a Milvus 2.3 server takes no ``not`` before ``in``)."""
    return f"id not in [{', '.join(escape_literal(i) for i in ids)}]"


def part_id(asset_id: str, key: str) -> str:
    """The row id of part ``key`` of an asset."""
    return f"{asset_id}#{key}"


class RowPart(Protocol):
    """What a part of an asset brings to its row (:class:`streamer.runner.operator.Part`)."""

    @property
    def key(self) -> str: ...

    @property
    def vector(self) -> npt.NDArray[np.float32]: ...

    @property
    def metadata(self) -> dict[str, Any]: ...


def with_parts(row: VectorRow, parts: Sequence[RowPart]) -> list[VectorRow]:
    """``row``, then one row per part: id ``<id>#<key>``, the part's vector, ``row``'s metadata
    with the part's own and ``row``'s id under :data:`PART_OF`."""
    return [
        row,
        *(
            replace(
                row,
                id=part_id(row.id, part.key),
                vector=part.vector,
                metadata={**row.metadata, **part.metadata, PART_OF: row.id},
            )
            for part in parts
        ),
    ]


def parts_filter(ids: Iterable[str], keep: Mapping[str, Sequence[str]] | None = None) -> str:
    """The rows of the parts of assets ``ids``, less the row ids ``keep`` lists per asset."""
    clauses = []
    for asset_id in ids:
        clause = f"metadata[{escape_literal(PART_OF)}] == {escape_literal(asset_id)}"
        kept = (keep or {}).get(asset_id)
        clauses.append(f"({clause} and {not_id_filter(kept)})" if kept else clause)
    return " or ".join(clauses)


@dataclass(frozen=True, slots=True)
class VectorRow:
    id: str
    vector: npt.NDArray[np.float32]
    content_hash: str
    model_version: str
    media_type: str
    uri: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def row_bytes(row: VectorRow) -> int:
    """About what ``row`` weighs in an upsert message: its float32 vector, its strings in UTF-8,
    its metadata as JSON, and a little framing."""
    strings = (row.id, row.content_hash, row.model_version, row.media_type, row.uri, row.text)
    return (
        4 * row.vector.size
        + sum(len(s.encode()) for s in strings)
        + len(json.dumps(row.metadata, default=str).encode())
        + ROW_OVERHEAD_BYTES
    )


def upsert_chunks(
    rows: Sequence[VectorRow], *, max_rows: int, max_bytes: int
) -> Iterator[tuple[int, Sequence[VectorRow]]]:
    """Consecutive runs of ``rows`` (with the index of their first row), each at most
    ``max_rows`` rows and ``max_bytes`` estimated bytes. A row over ``max_bytes`` by itself goes
    alone: the server decides whether it takes it, and the sink isolates it if not."""
    start, size = 0, 0
    for i, row in enumerate(rows):
        weight = row_bytes(row)
        if i > start and (i - start >= max_rows or size + weight > max_bytes):
            yield start, rows[start:i]
            start, size = i, 0
        size += weight
    if start < len(rows):
        yield start, rows[start:]


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    score: float
    uri: str | None
    text: str | None
    metadata: dict[str, Any]
    model_version: str | None
    vector: npt.NDArray[np.float32] | None = None  # when asked for (``with_vectors``)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """What the store holds for one asset, as needed to decide whether work is needed."""

    id: str
    content_hash: str
    uri: str
    metadata: dict[str, Any]
    vector: npt.NDArray[np.float32] | None = None
    text: str = ""
    media_type: str = ""


def collection_schema(dim: int) -> CollectionSchema:
    """The fields of every collection streamer writes (``dim``: the vectors' length)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_CHARS * 4)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("model_version", DataType.VARCHAR, max_length=128)
    schema.add_field("media_type", DataType.VARCHAR, max_length=16)
    schema.add_field("uri", DataType.VARCHAR, max_length=URI_MAX_BYTES)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("updated_ms", DataType.INT64)
    return schema


def _needs_load(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "released" in text or "load()" in text or "not loaded" in text


def _index_missing(exc: BaseException) -> bool:
    """A collection created but not yet indexed: pymilvus's ``create_collection`` with index
    parameters is three calls (create, index, load), and a reader in between sees it."""
    text = str(exc).lower()
    return "index not found" in text or "indexnotexist" in text


def _is_transient(exc: BaseException) -> bool:
    if "larger than max" in str(exc).lower():
        # gRPC's RESOURCE_EXHAUSTED for a message over the size limit: the same call fails
        # however often it is retried; as a refusal, the sink splits the batch instead
        return False
    if isinstance(exc, grpc.RpcError | ConnectionError | TimeoutError):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("unavailable", "connect", "deadline", "timeout", "closed"))


class VectorStore:
    """Typed access to Milvus for the ingest path and the search path."""

    def __init__(self, settings: MilvusSettings) -> None:
        self.settings = settings
        self._client: MilvusClient | None = None
        self._described: dict[str, dict[str, Any]] = {}
        self._unflushed: dict[str, int] = {}
        # batches in flight may meet a new collection at once: one creates it, the rest wait
        self._creating = threading.Lock()

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            token = self.settings.token.get_secret_value() if self.settings.token else ""
            self._client = self._call(
                "connect", lambda: MilvusClient(uri=self.settings.uri, token=token)
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._described.clear()

    def _call(self, what: str, fn: Callable[[], T], *, collection: str | None = None) -> T:
        """Run one Milvus call with typed errors. A collection found released (a restarted
        server forgets what was loaded) is loaded again and the call retried once."""
        try:
            return fn()
        except (MilvusException, grpc.RpcError, ConnectionError, TimeoutError) as exc:
            if collection is not None and _needs_load(exc):
                log.warning("milvus: %s was released; loading it again", collection)
                self._load(collection)
                return self._call(what, fn)
            raise self._typed(what, exc) from exc

    def _typed(self, what: str, exc: BaseException) -> TransientError | SinkError:
        if _is_transient(exc):
            self._described.clear()
            return TransientError("milvus", f"{what}: {exc}")
        return SinkError(f"milvus {what} failed: {exc}")

    def _load(self, name: str, *, wait_index_s: float = 10.0, poll_s: float = 0.1) -> None:
        """Load ``name``. One that another process is still creating has no index yet and
        cannot load: wait up to ``wait_index_s`` for its index; past that the load is a
        transient failure (a retry later finds the collection made)."""
        deadline = time.monotonic() + wait_index_s
        while True:
            try:
                self.client.load_collection(name)
                return
            except (MilvusException, grpc.RpcError, ConnectionError, TimeoutError) as exc:
                if not _index_missing(exc):
                    raise self._typed("load_collection", exc) from exc
                if time.monotonic() >= deadline:
                    raise TransientError(
                        "milvus", f"load_collection: {name} has no index yet: {exc}"
                    ) from exc
                time.sleep(poll_s)

    # collections and aliases

    def ensure_collection(
        self, name: str, dim: int, *, alias: str | None = None, model_version: str = ""
    ) -> str:
        """Create and load ``name`` if missing; point ``alias`` at it if the alias is free.

        Returns the collection's incarnation: a token that changes when the collection is
        dropped and created again, so caches keyed by it never outlive the data.
        """
        if name in self._described:
            return self.incarnation(name)
        with self._creating:
            return self._ensure_collection(name, dim, alias=alias, model_version=model_version)

    def _ensure_collection(
        self, name: str, dim: int, *, alias: str | None, model_version: str
    ) -> str:
        if name in self._described:
            return self.incarnation(name)
        client = self.client
        if not self._call("has_collection", lambda: client.has_collection(name)):
            schema = collection_schema(dim)
            index = MilvusClient.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="IP")
            try:
                self._call(
                    "create_collection",
                    lambda: client.create_collection(
                        name,
                        schema=schema,
                        index_params=index,
                        properties={INCARNATION: uuid.uuid4().hex, MODEL_VERSION: model_version},
                        consistency_level=READ_YOUR_WRITES,
                    ),
                )
            except SinkError:
                # Another worker may have created it between the check and the create (and
                # milvus-lite may still be writing it): give it a moment to appear.
                for _ in range(20):
                    if self._call("has_collection", lambda: client.has_collection(name)):
                        break
                    time.sleep(0.1)
                else:
                    raise
        self._load(name)
        if alias is not None and self.alias_target(alias) is None:
            try:
                self._call("create_alias", lambda: client.create_alias(name, alias))
            except SinkError:
                if self.alias_target(alias) is None:
                    raise
        return self.incarnation(name)

    def _description(self, name: str) -> dict[str, Any]:
        """``describe_collection`` of ``name``, asked once (until it is dropped, or a call
        fails as if the server went away)."""
        if name not in self._described:
            described = self._call("describe", lambda: self.client.describe_collection(name))
            self._described[name] = dict(described)
        return self._described[name]

    def _properties(self, name: str) -> dict[str, str]:
        return dict(self._description(name).get("properties") or {})

    def incarnation(self, name: str) -> str:
        return str(self._properties(name).get(INCARNATION, "0"))

    def model_version(self, name: str) -> str | None:
        """The model version a collection was created for (None if streamer did not create it)."""
        return self._properties(name).get(MODEL_VERSION) or None

    def alias_target(self, alias: str) -> str | None:
        client = self.client
        aliases = self._call("list_aliases", client.list_aliases).get("aliases", [])
        if alias not in aliases:
            return None
        described = self._call("describe_alias", lambda: client.describe_alias(alias))
        target = described.get("collection_name") if described else None
        return str(target) if target else None

    def point_alias(self, alias: str, name: str) -> None:
        """Atomically point ``alias`` at ``name`` (creating the alias if needed)."""
        client = self.client
        if self.alias_target(alias) is None:
            self._call("create_alias", lambda: client.create_alias(name, alias))
        else:
            self._call("alter_alias", lambda: client.alter_alias(name, alias))

    def collections(self, prefix: str = "") -> list[str]:
        names = self._call("list_collections", self.client.list_collections)
        return sorted(n for n in names if n.startswith(prefix))

    def drop(self, name: str) -> None:
        """Drop ``name`` and the aliases that point at it."""
        client = self.client
        self._described.pop(name, None)
        listed = self._call("list_aliases", lambda: client.list_aliases(collection_name=name))
        for alias in listed.get("aliases", []):
            self._call("drop_alias", lambda a=alias: client.drop_alias(a))  # type: ignore[misc]
        self._call("drop_collection", lambda: client.drop_collection(name))

    def discard(self, name: str) -> None:
        """Drop ``name`` if it is there; one dropped meanwhile by someone else is no error."""
        self._described.pop(name, None)
        if name not in self.collections(name):
            return
        try:
            self.drop(name)
        except SinkError:
            if name in self.collections(name):
                raise

    # rows

    def upsert(self, name: str, rows: Sequence[VectorRow]) -> int:
        """Write ``rows`` in calls of at most ``upsert_max_rows`` rows and ``upsert_max_bytes``
        (estimated); returns how many rows Milvus acknowledged.

        Each call is acknowledged before the next is sent. A call refused raises, and the calls
        before it stay written: an upsert by primary key may be sent again, which is what a
        retry after an outage and the sink's isolation of a refused row do.
        """
        chunks = upsert_chunks(
            rows, max_rows=self.settings.upsert_max_rows, max_bytes=self.settings.upsert_max_bytes
        )
        upserted = 0
        for start, chunk in chunks:
            what = f"upsert of rows {start}-{start + len(chunk) - 1} of {len(rows)} into {name}"
            upserted += self._upsert(name, chunk, what)
        if self.settings.flush_rows and self._unflushed.get(name, 0) >= self.settings.flush_rows:
            self.flush(name)
        return upserted

    def _upsert(self, name: str, rows: Sequence[VectorRow], what: str) -> int:
        """One upsert call, its request built by columns (:mod:`streamer.storage.upsert_request`:
        a tenth of the CPU pymilvus's row path takes) and sent through the client's own
        connection, as ``MilvusClient.upsert`` sends it."""

        def call() -> int:
            client, described = self.client, self._description(name)
            try:
                request = upsert_request(name, rows, described["fields"])
            except ValueError as exc:  # vectors of different lengths, a field no row has
                raise SinkError(f"milvus {what} failed: {exc}") from exc
            result = client._get_connection().upsert(
                name, [], upsert_param=request, schema=described,
                context=client._generate_call_context(),
            )  # fmt: skip
            return int(result.upsert_count)

        upserted = self._call(what, call, collection=name)
        self._unflushed[name] = self._unflushed.get(name, 0) + len(rows)
        return upserted

    def flush(self, name: str) -> None:
        """Seal what was written so searches use the index instead of a scan."""
        self._call("flush", lambda: self.client.flush(name))
        self._unflushed[name] = 0

    def delete(self, name: str, ids: Sequence[str], *, with_parts: bool = False) -> None:
        """Delete the rows of ``ids`` (and, ``with_parts``, the rows of their parts)."""
        if ids:
            self._call(
                "delete", lambda: self.client.delete(name, filter=id_filter(ids)), collection=name
            )
        if with_parts:
            self.delete_parts(name, ids)

    def delete_parts(
        self, name: str, ids: Sequence[str], keep: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Delete the rows of the parts of ``ids`` but those ``keep`` names (per asset id, the
        row ids of its parts just written): no part of an earlier version of an asset stays."""
        for start in range(0, len(ids), PARTS_CHUNK):
            where = parts_filter(ids[start : start + PARTS_CHUNK], keep)
            self._call(
                "delete parts",
                lambda where=where: self.client.delete(name, filter=where),  # type: ignore[misc]
                collection=name,
            )

    def read_rows(
        self, name: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> dict[str, StoredRow]:
        """The stored rows among ``ids`` (missing ids are simply absent)."""
        fields = ["id", "content_hash", "uri", "metadata", "text", "media_type"]
        fields += ["vector"] if with_vectors else []
        found: dict[str, StoredRow] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), QUERY_CHUNK):
            chunk = unique[start : start + QUERY_CHUNK]
            rows = self._call(
                "query",
                lambda c=chunk: self.client.query(  # type: ignore[misc]
                    name,
                    filter=id_filter(c),
                    output_fields=fields,
                    consistency_level=READ_YOUR_WRITES,
                ),
                collection=name,
            )
            for row in rows:
                vector = np.asarray(row["vector"], dtype=np.float32) if with_vectors else None
                found[row["id"]] = StoredRow(
                    id=row["id"],
                    content_hash=row["content_hash"],
                    uri=row["uri"],
                    metadata=_as_dict(row.get("metadata")),
                    vector=vector,
                    text=row.get("text") or "",
                    media_type=row.get("media_type") or "",
                )
        return found

    def count(self, name: str, *, consistency_level: str = READ_YOUR_WRITES) -> int:
        rows = self._call(
            "count",
            lambda: self.client.query(
                name, filter="", output_fields=["count(*)"], consistency_level=consistency_level
            ),
            collection=name,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def wait_searchable(self, name: str, *, timeout_s: float = 30.0, poll_s: float = 0.25) -> bool:
        """Wait until searches (at the configured consistency level) see at least the rows
        ``name`` holds now: a Milvus server at Bounded shows writes only after its grace time
        (~5 s). True at once on milvus-lite or at Strong; False after ``timeout_s``."""
        written = self.count(name)
        deadline = time.monotonic() + timeout_s
        while self.count(name, consistency_level=self.settings.consistency_level) < written:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def ids(self, name: str, *, page: int = 1000) -> list[str]:
        """Every id in ``name`` (for audits, rollouts and tests), read ``page`` at a time in
        the order of the ids, each page after the last id of the one before, read-your-writes.

        The pages are ours, not pymilvus's ``query_iterator``: it writes the last id into its
        next filter unescaped, so an id holding ``"`` or ``\\`` ended the listing with an error.
        """
        out: list[str] = []
        last: str | None = None
        while True:
            where = f"id > {escape_literal(last)}" if last is not None else 'id != ""'
            rows = self._call(
                "list ids",
                lambda where=where: self.client.query(  # type: ignore[misc]
                    name,
                    filter=where,
                    output_fields=["id"],
                    limit=page,
                    consistency_level=READ_YOUR_WRITES,
                    # the iterator's own mode: the smallest ids first, in order
                    iterator="True",
                    reduce_stop_for_best="True",
                ),
                collection=name,
            )
            batch = [str(row["id"]) for row in rows]
            out += batch
            if len(batch) < page:
                return out
            last = max(batch, key=lambda i: i.encode())  # the server orders ids by their bytes

    def search(
        self,
        name: str,
        vectors: npt.NDArray[np.float32],
        *,
        top_k: int,
        filter_expr: str = "",
        with_vectors: bool = False,
    ) -> list[list[SearchHit]]:
        """Top-k hits per query vector, best first (inner product: the query vectors are
        taken as given, not normalised); ``with_vectors``: each hit with its stored vector."""
        data = [v.astype(np.float32).tolist() for v in np.atleast_2d(vectors)]
        fields = ["uri", "text", "metadata", "model_version", *(["vector"] if with_vectors else [])]
        results = self._call(
            "search",
            lambda: self.client.search(
                name,
                data=data,
                limit=top_k,
                filter=filter_expr,
                output_fields=fields,
                search_params={"metric_type": "IP"},
                consistency_level=self.settings.consistency_level,
            ),
            collection=name,
        )
        return [
            [
                SearchHit(
                    id=h["id"],
                    score=float(h["distance"]),
                    uri=h["entity"].get("uri") or None,
                    text=h["entity"].get("text") or None,
                    metadata=_as_dict(h["entity"].get("metadata")),
                    model_version=h["entity"].get("model_version"),
                    vector=(
                        np.asarray(h["entity"]["vector"], dtype=np.float32)
                        if with_vectors
                        else None
                    ),
                )
                for h in hits
            ]
            for hits in results
        ]


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes) and value:
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}
