"""The query trainer over the vector store (milvus-lite, and a Milvus server): its top and
boundary results are those an exact search gives, nothing shown twice, and a session labelled
by an oracle learns to separate two groups of vectors stored in a collection."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config.settings import TrainerSettings
from streamer.storage.store import VectorRow
from streamer.trainer import MemoryIndex, StoreIndex, TrainingSession
from tests.integration.conftest import BOTH_MILVUS, Scenario

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

DIM = 16


def clusters(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """``n`` unit vectors around each of two directions: ids ``p<i>`` and ``n<i>``."""
    centres = rng.normal(size=(2, DIM))
    vectors = np.concatenate([c + 0.9 * rng.normal(size=(n, DIM)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(n)] + [f"n{i}" for i in range(n)]
    return ids, vectors.astype(np.float32)


@pytest.fixture
def indexes(scenario: Scenario) -> tuple[StoreIndex, MemoryIndex]:
    ids, vectors = clusters(np.random.default_rng(7), 120)
    store = scenario.store
    collection = f"{scenario.settings.milvus.collection_prefix}trainer"
    store.ensure_collection(collection, DIM)
    rows = [VectorRow(i, v, "h", "v@1", "image") for i, v in zip(ids, vectors, strict=True)]
    store.upsert(collection, rows)
    scenario.wait_searchable(collection)
    return StoreIndex(store, collection), MemoryIndex(ids, vectors)


def test_top_and_boundary_results_are_those_of_an_exact_search(
    indexes: tuple[StoreIndex, MemoryIndex],
) -> None:
    stored, memory = indexes
    weights = (3.0 * np.random.default_rng(1).normal(size=DIM)).astype(np.float32)
    shown = {"p1", "n2", "p3"}
    top = stored.top(weights, 12, shown)
    assert [i for i, _ in top] == [i for i, _ in memory.top(weights, 12, shown)]
    for asset_id, vector in top:  # the stored vectors come back with their ids
        assert np.allclose(vector, memory.vectors[memory.ids.index(asset_id)], atol=1e-6)
    for threshold in (0.0, 1.3, -2.0):
        near = [i for i, _ in stored.near(weights, threshold, 10, shown)]
        assert near == [i for i, _ in memory.near(weights, threshold, 10, shown)], threshold
        assert not shown & set(near)


def test_a_session_over_the_store_learns_the_groups(
    indexes: tuple[StoreIndex, MemoryIndex],
) -> None:
    stored, memory = indexes
    start = memory.vectors[memory.ids.index("p0")]
    session = TrainingSession.from_query(start, settings=TrainerSettings(round_size=8))
    session.seen.add("p0")
    shown: list[str] = []
    for _ in range(5):
        round_ = session.next(stored)
        assert len(round_) == 8 and not set(shown) & {c.id for c in round_}
        shown += [c.id for c in round_]
        for candidate in round_:
            session.label(candidate.id, candidate.vector, 1.0 if candidate.id[0] == "p" else -1.0)
        session.train()
    assert {c.why for c in round_} == {"top", "boundary"}
    logits = memory.vectors @ session.weights.astype(np.float32) + session.bias
    truth = np.array([i.startswith("p") for i in memory.ids])
    assert ((logits > 0) == truth).mean() >= 0.9
