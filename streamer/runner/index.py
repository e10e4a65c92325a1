"""A local index: the vectors of local runs in a milvus-lite file, stored and searched the way a
worker stores and searches them (a collection per topology and version, an alias per
topology), with no server to run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamer.config.settings import MilvusSettings
from streamer.core.extras import require
from streamer.runner.local import LocalRun
from streamer.runner.plan import Plan
from streamer.storage.store import SearchHit, VectorRow, VectorStore, with_parts

__all__ = ["LocalIndex"]


class LocalIndex:
    """Vectors of local runs in the milvus-lite database at ``path`` (a ``.db`` folder)."""

    def __init__(self, path: Path) -> None:
        require("milvus_lite", extra="embedded", feature="a local index (--index)")
        self.path = Path(path)
        self.store = VectorStore(MilvusSettings(uri=str(self.path), flush_rows=0))
        # milvus-lite's in-process server logs an unimplemented RPC that pymilvus probes (and
        # then does without) as an error with a traceback, and faiss its loader's attempts:
        # noise in a user's terminal, not news
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, run: LocalRun) -> int:
        """Upsert every vector of ``run`` into its topology's version; returns rows written."""
        written = 0
        for name, plan in run.plans.items():
            rows = []
            for item in run.items:
                if item.topology != name or item.vector is None:
                    continue
                row = VectorRow(
                    id=item.id,
                    vector=item.vector,
                    content_hash=item.content_hash,
                    model_version=plan.version,
                    media_type=plan.topology.media_type,
                    uri=item.source.uri or "",
                    text=item.source.text or "",
                )
                rows += with_parts(row, item.parts)  # a video's segments: rows of their own
            collection = plan.topology.collection_name(plan.version)
            self.store.ensure_collection(
                collection, plan.dim, alias=plan.topology.alias(), model_version=plan.version
            )
            for start in range(0, len(rows), 1000):
                written += self.store.upsert(collection, rows[start : start + 1000])
            self.store.flush(collection)
        return written

    def search(self, plan: Plan, vector: np.ndarray, *, top_k: int = 10) -> list[SearchHit]:
        """The ``top_k`` nearest rows of ``plan``'s version to ``vector``, best first."""
        collection = plan.topology.collection_name(plan.version)
        if collection not in self.store.collections(collection):
            return []
        return self.store.search(collection, vector[None, :], top_k=top_k)[0]
