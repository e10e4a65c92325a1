"""A training session's results from the vector store: one collection (a topology's version),
searched with the classifier's weights as the query.

The top of the ranking is a search that leaves out what the session has shown (``id not in
[...]``: the user's rows are never changed). The decision boundary is found in the same
ranking: a search deep enough to pass the threshold by ``k`` results holds every result above
it and the ``k`` just below, so the ``k`` nearest the threshold are among them, exactly. It
deepens fourfold until it does (up to the store's limit of 16,384, where a boundary deeper
still is approximated by the lowest results). Range searches would say it in one call, but
milvus-lite answers them wrongly for negative scores.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from streamer.storage.store import SearchHit, VectorStore, not_id_filter
from streamer.trainer.session import Vector

__all__ = ["StoreIndex"]

#: the deepest search the store answers (Milvus's top-k limit)
MAX_DEPTH = 16_384


class StoreIndex:
    """:class:`~streamer.trainer.session.VectorIndex` over one collection of ``store``."""

    def __init__(self, store: VectorStore, collection: str) -> None:
        self.store = store
        self.collection = collection

    def _search(self, weights: Vector, k: int, exclude: Collection[str]) -> list[SearchHit]:
        (hits,) = self.store.search(
            self.collection,
            np.asarray(weights, dtype=np.float32)[None, :],
            top_k=k,
            filter_expr=not_id_filter(sorted(exclude)) if exclude else "",
            with_vectors=True,
        )
        return hits

    def top(self, weights: Vector, k: int, exclude: Collection[str]) -> list[tuple[str, Vector]]:
        return [(h.id, _vector(h)) for h in self._search(weights, k, exclude)]

    def near(
        self, weights: Vector, threshold: float, k: int, exclude: Collection[str]
    ) -> list[tuple[str, Vector]]:
        depth = max(4 * k, 64)
        while True:
            hits = self._search(weights, min(depth, MAX_DEPTH), exclude)
            below = sum(1 for h in hits if h.score < threshold)
            if below >= k or len(hits) < min(depth, MAX_DEPTH) or depth >= MAX_DEPTH:
                break
            depth *= 4
        nearest = sorted(hits, key=lambda h: abs(h.score - threshold))[:k]
        return [(h.id, _vector(h)) for h in nearest]


def _vector(hit: SearchHit) -> Vector:
    assert hit.vector is not None  # asked for
    return hit.vector
