"""Upserts go to Milvus in calls bounded by rows and by bytes, each one acknowledged.

The store talks to a fake client here (no server): it records each upsert call and can refuse
one. The real clients, milvus-lite and a Milvus server, are in
tests/integration/test_store_chunks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient, MilvusException

from streamer.config.settings import MilvusSettings
from streamer.core.errors import SinkError, TransientError
from streamer.storage.store import (
    VectorRow,
    VectorStore,
    collection_schema,
    row_bytes,
    upsert_chunks,
)

DIM = 16


class Unavailable(grpc.RpcError):
    def __str__(self) -> str:
        return "StatusCode.UNAVAILABLE: connection refused"


class TooLarge(grpc.RpcError):
    def __str__(self) -> str:
        return "RESOURCE_EXHAUSTED: received message larger than max (67192797 vs. 67108864)"


class FakeClient:
    """Records upserts (the ids of each request, built as the store builds them for a real
    server); ``refuse`` maps a call number (0-based) to what that call raises."""

    def __init__(
        self,
        refuse: dict[int, list[Exception]] | None = None,
        refuse_loads: list[Exception] | None = None,
    ) -> None:
        self.calls: list[list[str]] = []
        self.refuse = refuse or {}
        self.refuse_loads = refuse_loads or []
        self.loads = 0
        self.flushes = 0

    def describe_collection(self, name: str) -> dict[str, Any]:
        return {"fields": collection_schema(DIM).to_dict()["fields"], "properties": {}}

    def _get_connection(self) -> FakeClient:  # the client's handler: the same fake
        return self

    def _generate_call_context(self) -> None:
        return None

    def upsert(self, name: str, entities: list[Any], upsert_param: Any, **_: Any) -> Any:
        failures = self.refuse.get(len(self.calls))
        if failures:
            raise failures.pop(0)
        column = next(f for f in upsert_param.fields_data if f.field_name == "id")
        self.calls.append(list(column.scalars.string_data.data))
        return SimpleNamespace(upsert_count=upsert_param.num_rows)

    def load_collection(self, name: str) -> None:
        self.loads += 1
        if self.refuse_loads:
            raise self.refuse_loads.pop(0)

    def flush(self, name: str) -> None:
        self.flushes += 1


def row(i: int, *, text: str = "") -> VectorRow:
    return VectorRow(
        id=f"a-{i}",
        vector=np.ones(DIM, dtype=np.float32) / np.sqrt(DIM),
        content_hash="0" * 64,
        model_version="m@1",
        media_type="text",
        text=text,
        metadata={"tenant": "acme"},
    )


def store_with(client: FakeClient, **settings: Any) -> VectorStore:
    store = VectorStore(MilvusSettings(**settings))
    store._client = cast(MilvusClient, client)
    return store


def ids(calls: Sequence[list[str]]) -> list[list[str]]:
    return [list(call) for call in calls]


def test_a_batch_is_split_by_rows_and_the_counts_summed() -> None:
    client = FakeClient()
    store = store_with(client, upsert_max_rows=4, flush_rows=0)
    assert store.upsert("c", [row(i) for i in range(10)]) == 10
    assert [len(call) for call in client.calls] == [4, 4, 2]
    assert [i for call in ids(client.calls) for i in call] == [f"a-{i}" for i in range(10)]


def test_a_batch_is_split_by_bytes() -> None:
    rows = [row(i, text="x" * 1000) for i in range(10)]
    weight = row_bytes(rows[0])
    assert weight > 4 * DIM + 1000  # the vector, the text and the rest
    client = FakeClient()
    store = store_with(client, upsert_max_rows=100, upsert_max_bytes=3 * weight + 1, flush_rows=0)
    assert store.upsert("c", rows) == 10
    assert [len(call) for call in client.calls] == [3, 3, 3, 1]


def test_a_row_over_the_byte_cap_goes_alone() -> None:
    rows = [row(0), row(1, text="y" * 5000), row(2)]
    chunks = list(upsert_chunks(rows, max_rows=10, max_bytes=row_bytes(rows[0]) * 2))
    assert [(start, [r.id for r in chunk]) for start, chunk in chunks] == [
        (0, ["a-0"]),
        (1, ["a-1"]),
        (2, ["a-2"]),
    ]


def test_what_fits_goes_in_one_call() -> None:
    client = FakeClient()
    store = store_with(client, flush_rows=0)
    assert store.upsert("c", [row(i) for i in range(1000)]) == 1000
    assert len(client.calls) == 1
    assert store.upsert("c", []) == 0 and len(client.calls) == 1


def test_a_refused_chunk_raises_after_the_chunks_before_it() -> None:
    client = FakeClient(refuse={1: [MilvusException(message="field text too long")]})
    store = store_with(client, upsert_max_rows=3, flush_rows=0)
    with pytest.raises(SinkError, match=r"upsert of rows 3-5 of 8 into c failed"):
        store.upsert("c", [row(i) for i in range(8)])
    assert ids(client.calls) == [["a-0", "a-1", "a-2"]]  # no chunk after the refused one


def test_an_unavailable_store_raises_transient_midway() -> None:
    client = FakeClient(refuse={2: [Unavailable()]})
    store = store_with(client, upsert_max_rows=2, flush_rows=0)
    with pytest.raises(TransientError):  # the caller retries the whole batch (upserts by id)
        store.upsert("c", [row(i) for i in range(6)])
    assert len(client.calls) == 2


def test_a_call_over_the_message_limit_is_refused_not_retried() -> None:
    client = FakeClient(refuse={0: [TooLarge()]})
    store = store_with(client, flush_rows=0)
    with pytest.raises(SinkError, match="larger than max"):  # the sink bisects what it refuses
        store.upsert("c", [row(i) for i in range(4)])


def test_a_released_collection_is_loaded_and_the_chunk_retried() -> None:
    released = MilvusException(message="collection not loaded")
    client = FakeClient(refuse={1: [released]})
    store = store_with(client, upsert_max_rows=2, flush_rows=0)
    assert store.upsert("c", [row(i) for i in range(6)]) == 6
    assert client.loads == 1
    assert [len(call) for call in client.calls] == [2, 2, 2]


def test_a_chunk_still_refused_after_its_retry_raises() -> None:
    released = MilvusException(message="collection not loaded")
    client = FakeClient(refuse={1: [released, MilvusException(message="still released")]})
    store = store_with(client, upsert_max_rows=2, flush_rows=0)
    with pytest.raises(SinkError):
        store.upsert("c", [row(i) for i in range(6)])
    assert client.loads == 1 and len(client.calls) == 1


def index_not_found() -> MilvusException:
    # what milvus-lite answers a load between another process's create and its index
    return MilvusException(code=700, message="index not found[collection=c]")


def test_a_collection_still_being_created_is_loaded_once_its_index_exists() -> None:
    released = MilvusException(message="collection not loaded")
    client = FakeClient(refuse={0: [released]}, refuse_loads=[index_not_found()] * 3)
    store = store_with(client, flush_rows=0)
    assert store.upsert("c", [row(i) for i in range(2)]) == 2
    assert client.loads == 4  # three refused while the index was missing, the fourth loaded
    assert len(client.calls) == 1


def test_a_collection_whose_index_never_comes_is_a_transient_failure() -> None:
    client = FakeClient(refuse_loads=[index_not_found()] * 1000)
    store = store_with(client, flush_rows=0)
    with pytest.raises(TransientError, match="has no index yet"):
        store._load("c", wait_index_s=0.05, poll_s=0.01)
    assert client.loads >= 2


def test_a_load_refused_for_another_cause_is_not_waited_on() -> None:
    client = FakeClient(refuse_loads=[MilvusException(message="collection not found")])
    store = store_with(client, flush_rows=0)
    with pytest.raises(SinkError, match="load_collection failed"):
        store._load("c")
    assert client.loads == 1


def test_flushes_count_rows_across_chunks() -> None:
    client = FakeClient()
    store = store_with(client, upsert_max_rows=3, flush_rows=10)
    store.upsert("c", [row(i) for i in range(9)])
    assert client.flushes == 0
    store.upsert("c", [row(i) for i in range(9, 12)])
    assert client.flushes == 1  # once per call of upsert, as before chunking


def test_rows_whose_vectors_differ_in_length_are_refused_unsent() -> None:
    client = FakeClient()
    short = VectorRow(
        id="a-9", vector=np.ones(DIM - 1, dtype=np.float32), content_hash="0" * 64,
        model_version="m@1", media_type="text",
    )  # fmt: skip
    with pytest.raises(SinkError, match="differ in length"):
        store_with(client).upsert("c", [row(0), short])
    assert client.calls == []
