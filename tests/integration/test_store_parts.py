"""Rows of parts (a video's segments) in the vector store, on milvus-lite and a Milvus server:
the stale parts of an asset go while those just written stay, and an asset's delete takes its
parts; other assets' rows are never touched (the filters escape every id)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.storage.store import PART_OF, VectorRow, part_id
from tests.integration.conftest import BOTH_MILVUS, Scenario

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

ASSETS = ("a", 'b"quoted', "c\\slashed")


def present(scenario: Scenario, collection: str) -> list[str]:
    """The ids stored of every asset's row and 3 parts (read by id: pymilvus's iterator does
    not escape the ids it pages by)."""
    every = [r.id for asset in ASSETS for r in rows(asset, 3)]
    return sorted(scenario.store.read_rows(collection, every))


def rows(asset_id: str, parts: int) -> list[VectorRow]:
    vector = np.ones(4, dtype=np.float32) / 2
    own = VectorRow(asset_id, vector, "h", "v@1", "video", metadata={"album": "x"})
    return [own] + [
        VectorRow(part_id(asset_id, f"s{k}"), vector, "h", "v@1", "video",
                  metadata={"album": "x", PART_OF: asset_id, "start_s": float(k)})
        for k in range(parts)
    ]  # fmt: skip


def test_stale_parts_go_and_deletes_take_the_parts(scenario: Scenario) -> None:
    store = scenario.store
    collection = f"{scenario.settings.milvus.collection_prefix}parts"
    store.ensure_collection(collection, 4)
    store.upsert(collection, [row for asset in ASSETS for row in rows(asset, 3)])
    assert len(present(scenario, collection)) == 12

    keep = {"a": [part_id("a", "s0")], 'b"quoted': []}  # a: one part left; b: none
    store.delete_parts(collection, list(keep), keep)
    assert present(scenario, collection) == sorted(
        ["a", "a#s0", 'b"quoted', *(r.id for r in rows("c\\slashed", 3))]
    )

    store.delete(collection, ["a", "c\\slashed"], with_parts=True)
    assert present(scenario, collection) == ['b"quoted']
