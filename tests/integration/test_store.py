"""The Milvus sink itself, on milvus-lite and on a real Milvus server: what a caller writes it
reads back at once, collections are loaded when found released, aliases switch and drops clean
up after themselves."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config.settings import MilvusSettings
from streamer.storage.store import VectorRow, VectorStore
from tests.integration.conftest import BOTH_MILVUS

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

DIM = 8


def row(i: int, content: str = "") -> VectorRow:
    vector = np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
    return VectorRow(
        id=f"a-{i}",
        vector=vector / np.linalg.norm(vector),
        content_hash=f"hash-{i}{content}",
        model_version="m@1",
        media_type="text",
        text=f"text {i}{content}",
        metadata={"i": i},
    )


def open_store(settings: MilvusSettings, **changes: object) -> VectorStore:
    return VectorStore(settings.model_copy(update=changes))


def test_writes_are_read_at_once(settings: MilvusSettings) -> None:
    store = open_store(settings)
    name = f"{settings.collection_prefix}docs"
    incarnation = store.ensure_collection(name, DIM, model_version="m@1")
    rows = [row(i) for i in range(20)]
    assert store.upsert(name, rows) == 20
    # the dedupe lookup, the count and the id listing see every acknowledged write
    found = store.read_rows(name, [r.id for r in rows] + ["missing"], with_vectors=True)
    assert set(found) == {r.id for r in rows}
    assert found["a-3"].content_hash == "hash-3" and found["a-3"].metadata == {"i": 3}
    assert found["a-3"].vector is not None
    assert np.allclose(found["a-3"].vector, rows[3].vector, atol=1e-6)
    assert store.count(name) == 20
    assert sorted(store.ids(name)) == sorted(r.id for r in rows)

    # a search at Strong sees them at once; at the default level, once wait_searchable says so
    # (what a promote waits for before it switches the alias)
    strong = open_store(settings, consistency_level="Strong")
    assert strong.search(name, rows[5].vector, top_k=1)[0][0].id == "a-5"
    assert store.wait_searchable(name, timeout_s=60)
    assert len(store.search(name, rows[5].vector, top_k=30)[0]) == 20

    # an overwrite and a delete are seen at once too
    store.upsert(name, [row(3, content="-new")])
    store.delete(name, ["a-4"])
    after = store.read_rows(name, ["a-3", "a-4"])
    assert set(after) == {"a-3"} and after["a-3"].content_hash == "hash-3-new"
    assert store.count(name) == 19
    assert "a-4" not in store.ids(name)
    assert "a-4" not in {h.id for h in strong.search(name, rows[4].vector, top_k=30)[0]}

    # a flush changes nothing a reader sees
    store.flush(name)
    assert store.count(name) == 19
    assert store.incarnation(name) == incarnation == open_store(settings).incarnation(name)
    assert store.model_version(name) == "m@1"
    store.close()
    strong.close()


def test_a_released_collection_is_loaded_again(settings: MilvusSettings) -> None:
    store = open_store(settings, consistency_level="Strong")
    name = f"{settings.collection_prefix}docs"
    store.ensure_collection(name, DIM)
    rows = [row(i) for i in range(5)]
    store.upsert(name, rows)
    store.client.release_collection(name)  # as a server restart leaves it for a while
    assert store.search(name, rows[2].vector, top_k=1)[0][0].id == "a-2"
    store.client.release_collection(name)
    assert set(store.read_rows(name, ["a-1"])) == {"a-1"}
    store.client.release_collection(name)
    assert store.count(name) == 5
    store.close()


def test_an_alias_switches_and_a_drop_removes_it(settings: MilvusSettings) -> None:
    store = open_store(settings, consistency_level="Strong")
    prefix = settings.collection_prefix
    alias, v1, v2 = f"{prefix}docs", f"{prefix}docs__v1", f"{prefix}docs__v2"
    first = store.ensure_collection(v1, DIM, alias=alias, model_version="m@1")
    store.ensure_collection(v2, DIM, alias=alias, model_version="m@2")
    assert store.alias_target(alias) == v1  # the alias was taken: a new version does not move it
    store.upsert(v1, [row(1)])
    store.upsert(v2, [row(2)])

    store.point_alias(alias, v2)
    assert store.alias_target(alias) == v2
    assert [h.id for h in store.search(alias, row(2).vector, top_k=5)[0]] == ["a-2"]
    assert store.model_version(store.alias_target(alias) or "") == "m@2"
    store.point_alias(alias, v1)  # and back
    assert [h.id for h in store.search(alias, row(2).vector, top_k=5)[0]] == ["a-1"]

    # Milvus >= 2.4 refuses to drop a collection an alias points at: drop takes the alias too
    store.drop(v1)
    assert store.collections(prefix) == [v2]
    assert store.alias_target(alias) is None
    again = store.ensure_collection(v1, DIM, alias=alias, model_version="m@1")
    assert again != first, "a collection created again has a new incarnation"
    assert store.alias_target(alias) == v1 and store.count(v1) == 0
    store.close()


def test_every_id_is_listed_whatever_it_holds(settings: MilvusSettings) -> None:
    """Ids with quotes, backslashes and non-ASCII, over several pages: each listed once (a
    rollout's snapshot lists them so)."""
    store = open_store(settings)
    name = f"{settings.collection_prefix}odd_ids"
    store.ensure_collection(name, DIM)
    odd = ['say "hi"', "back\\slash", "é-accent", "a#s0", "x'y", " spaced ", "z"]
    ids = odd + [f"n-{i:04d}" for i in range(230)]
    vector = row(0).vector
    rows = [VectorRow(i, vector, "h", "m@1", "text") for i in ids]
    for start in range(0, len(rows), 100):
        store.upsert(name, rows[start : start + 100])
    listed = store.ids(name, page=50)  # five pages
    assert len(listed) == len(set(listed)) == len(ids)
    assert set(listed) == set(ids)
