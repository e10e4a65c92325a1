"""In-process fakes for unit tests: the vector store, the Redis hashes, and fake operators
(a decoder and a model) composed into real topologies.

They keep the real classes' contracts (and are checked against them by the integration
tests, which run the real ones); they are never used by the product itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from operators.fetch import Fetch
from operators.normalize import Normalize
from streamer.config.settings import FetchSettings, MilvusSettings
from streamer.core.errors import DecodeError, EmbedError, SinkError, TransientError
from streamer.core.messages import UploadMessage
from streamer.core.stats import Stats
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.pipeline import IngestPipeline, IngestReport, Record
from streamer.runner.context import Context
from streamer.runner.operator import VECTOR, BatchPolicy, CpuOperator, LoadedModel, ModelOperator
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import ModelVersion, Topology
from streamer.storage.store import PART_OF, SearchHit, StoredRow, VectorRow, VectorStore

__all__ = [
    "FakeDecode",
    "FakeEmbed",
    "FakeModel",
    "InMemoryHashes",
    "InMemoryVectorStore",
    "Tally",
    "fake_topology",
    "tally",
    "transient",
]


@dataclass
class _Collection:
    dim: int
    incarnation: str
    model_version: str = ""
    rows: dict[str, VectorRow] = field(default_factory=dict)


class InMemoryVectorStore(VectorStore):
    """A vector store in a dict; ``fail_next`` makes the next calls raise, to test retries."""

    def __init__(self) -> None:
        super().__init__(MilvusSettings())
        self.data: dict[str, _Collection] = {}
        self.aliases: dict[str, str] = {}
        self.fail_next: list[Exception] = []
        self.upsert_calls = 0
        self.search_calls = 0
        self._created = 0

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def close(self) -> None:
        pass

    def ensure_collection(
        self, name: str, dim: int, *, alias: str | None = None, model_version: str = ""
    ) -> str:
        self._maybe_fail()
        if name not in self.data:
            self._created += 1
            self.data[name] = _Collection(dim, f"inc-{self._created}", model_version)
        if alias is not None and alias not in self.aliases:
            self.aliases[alias] = name
        return self.data[name].incarnation

    def incarnation(self, name: str) -> str:
        return self.data[name].incarnation

    def model_version(self, name: str) -> str | None:
        return self.data[name].model_version or None

    def alias_target(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def point_alias(self, alias: str, name: str) -> None:
        self.aliases[alias] = name

    def collections(self, prefix: str = "") -> list[str]:
        self._maybe_fail()
        return sorted(n for n in self.data if n.startswith(prefix))

    def drop(self, name: str) -> None:
        self.data.pop(name, None)

    def _resolve(self, name: str) -> _Collection:
        return self.data[self.aliases.get(name, name)]

    def upsert(self, name: str, rows: Sequence[VectorRow]) -> int:
        self._maybe_fail()
        self.upsert_calls += 1
        collection = self._resolve(name)
        for row in rows:
            if row.vector.shape != (collection.dim,):
                raise SinkError(f"vector of {row.vector.shape} for dim {collection.dim}")
        for row in rows:
            collection.rows[row.id] = row
        return len(rows)

    def flush(self, name: str) -> None:
        self._maybe_fail()

    def delete(self, name: str, ids: Sequence[str], *, with_parts: bool = False) -> None:
        self._maybe_fail()
        for asset_id in ids:
            self._resolve(name).rows.pop(asset_id, None)
        if with_parts:
            self.delete_parts(name, ids)

    def delete_parts(
        self, name: str, ids: Sequence[str], keep: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._maybe_fail()
        rows = self._resolve(name).rows
        for row_id, row in list(rows.items()):
            of = str(row.metadata.get(PART_OF, ""))
            if of in ids and row_id not in (keep or {}).get(of, ()):
                del rows[row_id]

    def read_rows(
        self, name: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> dict[str, StoredRow]:
        self._maybe_fail()
        rows = self._resolve(name).rows
        return {
            i: StoredRow(
                id=i,
                content_hash=rows[i].content_hash,
                uri=rows[i].uri,
                metadata=rows[i].metadata,
                vector=rows[i].vector if with_vectors else None,
                text=rows[i].text,
                media_type=rows[i].media_type,
            )
            for i in ids
            if i in rows
        }

    def count(self, name: str, *, consistency_level: str = "Strong") -> int:
        return len(self._resolve(name).rows)

    def wait_searchable(self, name: str, *, timeout_s: float = 30.0, poll_s: float = 0.25) -> bool:
        return True  # reads its own writes, like milvus-lite

    def ids(self, name: str, *, page: int = 1000) -> list[str]:
        return list(self._resolve(name).rows)

    def search(
        self,
        name: str,
        vectors: npt.NDArray[np.float32],
        *,
        top_k: int,
        filter_expr: str = "",
        with_vectors: bool = False,
    ) -> list[list[SearchHit]]:
        """Exact search; of filters, only ``id not in [...]`` (what the trainer sends)."""
        self._maybe_fail()
        self.search_calls += 1
        rows = list(self._resolve(name).rows.values())
        excluded: set[str] = set()
        if filter_expr:
            if not filter_expr.startswith("id not in ["):
                raise NotImplementedError(f"the in-memory store has no filter {filter_expr!r}")
            excluded = set(json.loads(filter_expr[len("id not in ") :]))
        out = []
        for query in np.atleast_2d(vectors):
            kept = [r for r in rows if r.id not in excluded]
            scored = sorted(kept, key=lambda r: -float(r.vector @ query))[:top_k]
            hits = [
                SearchHit(
                    id=r.id,
                    score=float(r.vector @ query),
                    uri=r.uri or None,
                    text=r.text or None,
                    metadata=r.metadata,
                    model_version=r.model_version,
                    vector=r.vector if with_vectors else None,
                )
                for r in scored
            ]
            out.append(hits)
        return out


class InMemoryHashes:
    """The subset of the Redis client that :class:`~streamer.ingest.dedupe.DedupeCache` uses."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            import redis

            raise redis.ConnectionError("fake redis is down")

    def hmget(self, key: str, fields: Sequence[str]) -> list[bytes | None]:
        self._check()
        return [self.hashes.get(key, {}).get(f) for f in fields]

    def hset(self, key: str, mapping: Mapping[str, str]) -> int:
        self._check()
        self.hashes.setdefault(key, {}).update({k: v.encode() for k, v in mapping.items()})
        return len(mapping)

    def hdel(self, key: str, *fields: str) -> int:
        self._check()
        return sum(self.hashes.get(key, {}).pop(f, None) is not None for f in fields)

    def flushall(self) -> None:
        self.hashes.clear()


class FakeDecode(CpuOperator[bytes, bytes]):
    """Passes bytes on; content starting with ``bad`` is refused, as a corrupt file would be."""

    name = "decode"
    takes = bytes
    gives = bytes
    error = DecodeError

    def apply(self, item: bytes) -> bytes:
        if item.startswith(b"bad"):
            raise DecodeError("fake decoder refuses content starting with 'bad'")
        return item


@dataclass
class Tally:
    """What a fake model was asked to do: items embedded, and the size of each call."""

    calls: int = 0
    batches: list[int] = field(default_factory=list)


class FakeModel:
    """Deterministic vectors from the content; ``boom`` content makes the call fail."""

    device = "cpu"
    precision = "fp32"

    def __init__(self, dim: int, tally: Tally) -> None:
        self.dim = dim
        self.tally = tally

    def sample_inputs(self, n: int) -> list[bytes]:
        return [f"sample {i}".encode() for i in range(n)]

    def __call__(self, batch: Sequence[bytes]) -> npt.NDArray[np.float32]:
        if any(p.startswith(b"boom") for p in batch):
            raise RuntimeError("fake model exploded")
        self.tally.calls += len(batch)
        self.tally.batches.append(len(batch))
        return np.stack([np.random.default_rng(_seed(p)).normal(size=self.dim) for p in batch])


@dataclass(frozen=True)
class FakeEmbed(ModelOperator[bytes, npt.NDArray[np.float32]]):
    name = "embed"
    takes = bytes
    gives = VECTOR
    error = EmbedError

    dim: int = 8
    tally: Tally = field(default_factory=Tally, compare=False)

    def load(self, device: str, precision: str) -> FakeModel:
        return FakeModel(self.dim, self.tally)

    def output_dim(self, model: LoadedModel[Any, Any], upstream: int | None) -> int:
        return self.dim


def fake_topology(
    name: str,
    media_type: str,
    *,
    dim: int = 8,
    batch: int = 4,
    metadata_fields: tuple[str, ...] = ("tenant", "source", "category"),
) -> Topology:
    """fetch → fake decode → fake model → normalize, version ``<name>@1``, and a rollout
    version ``<name>@2`` whose model gives vectors of ``dim + 2``."""
    policy = BatchPolicy(batch, 10)
    return Topology(
        name=name,
        media_type=media_type,
        stages=(Fetch(), FakeDecode(), FakeEmbed(dim, batch=policy), Normalize()),
        model_version=f"{name}@1",
        alternatives=(ModelVersion(f"{name}@2", {"embed": FakeEmbed(dim + 2, batch=policy)}),),
        metadata_fields=metadata_fields,
    )


def tally(topology: Topology, version: str | None = None) -> Tally:
    """The tally of a fake topology's model."""
    embed = next(s for s in topology.stages_for(version) if isinstance(s, FakeEmbed))
    return embed.tally


def transient(dependency: str = "milvus") -> TransientError:
    return TransientError(dependency, "fake outage")


def _seed(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


class Partition:
    """An ingest pipeline over an in-memory store and cache, fed messages as one partition
    delivers them (at increasing offsets): for tests of the ingest path without servers."""

    def __init__(self, topologies: Sequence[Topology], root: Path, **pipeline: Any) -> None:
        self.store = InMemoryVectorStore()
        plans = Plans(Context(FetchSettings(media_roots=(root,)), device="cpu"))
        pool = ThreadPoolExecutor(2, "partition")
        self.pipeline = IngestPipeline(
            topologies=topologies,
            plans=plans,
            runner=Runner(pool, pool, batch_size=plans.batch_size),
            store=self.store,
            cache=DedupeCache(InMemoryHashes(), prefix="t"),  # type: ignore[arg-type]
            stats=Stats(None, prefix="t"),
            **pipeline,
        )
        self.offset = 0

    def send(self, *messages: UploadMessage) -> IngestReport:
        records = []
        for message in messages:
            self.offset += 1
            records.append(Record(message.to_bytes(), None, "media.uploads", 0, self.offset))
        return asyncio.run(self.pipeline.process(records))
