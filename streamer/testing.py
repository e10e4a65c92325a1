"""In-process fakes of the vector store, the Redis hashes and an embedder, for unit tests.

They keep the real classes' contracts (and are checked against them by the integration
tests, which run the real ones); they are never used by the product itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from operators.normalize import l2_normalize
from streamer.models.embedders import EmbedderPool
from streamer.core.errors import DecodeError, SinkError, TransientError
from streamer.config.settings import MilvusSettings
from streamer.storage.store import SearchHit, StoredRow, VectorRow, VectorStore
from topologies.base import Topology

__all__ = ["FakeEmbedder", "InMemoryHashes", "InMemoryVectorStore", "fake_pool"]


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

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._maybe_fail()
        for asset_id in ids:
            self._resolve(name).rows.pop(asset_id, None)

    def fetch(
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

    def count(self, name: str) -> int:
        return len(self._resolve(name).rows)

    def ids(self, name: str) -> list[str]:
        return list(self._resolve(name).rows)

    def search(
        self, name: str, vectors: npt.NDArray[np.float32], *, top_k: int, filter_expr: str = ""
    ) -> list[list[SearchHit]]:
        self._maybe_fail()
        self.search_calls += 1
        rows = list(self._resolve(name).rows.values())
        out = []
        for query in np.atleast_2d(vectors):
            scored = sorted(rows, key=lambda r: -float(r.vector @ query))[:top_k]
            hits = [
                SearchHit(
                    id=r.id,
                    score=float(r.vector @ query),
                    uri=r.uri or None,
                    text=r.text or None,
                    metadata=r.metadata,
                    model_version=r.model_version,
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


class FakeEmbedder:
    """Deterministic vectors from the content; ``bad`` content fails decode, ``boom`` the model."""

    device = "cpu"
    precision = "fp32"

    def __init__(self, topology: Topology, dim: int = 8, version: str | None = None) -> None:
        self.topology = topology
        self.version = version or topology.model_version
        self.dim = dim
        self.calls = 0
        self.batches: list[int] = []

    def sample_inputs(self, n: int) -> list[Any]:
        return [f"sample {i}".encode() for i in range(n)]

    def prepare(self, data: bytes) -> Any:
        if data.startswith(b"bad"):
            raise DecodeError("fake decoder refuses content starting with 'bad'")
        return data

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]:
        if any(p.startswith(b"boom") for p in prepared):
            raise RuntimeError("fake model exploded")
        self.calls += len(prepared)
        self.batches.append(len(prepared))
        rows = [np.random.default_rng(_seed(p)).normal(size=self.dim) for p in prepared]
        return l2_normalize(np.stack(rows))


def transient(dependency: str = "milvus") -> TransientError:
    return TransientError(dependency, "fake outage", retry_after_s=0.0)


def _seed(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


def fake_pool(defaults: Mapping[str, FakeEmbedder]) -> EmbedderPool:
    """A pool serving ``defaults`` for each topology's own version and a fresh fake (of a
    different dimension) for any other version, as a rollout candidate would be."""

    def load(topology: Topology, version: str) -> FakeEmbedder:
        if version == topology.model_version:
            return defaults[topology.name]
        return FakeEmbedder(topology, dim=defaults[topology.name].dim + 2, version=version)

    return EmbedderPool(load)
