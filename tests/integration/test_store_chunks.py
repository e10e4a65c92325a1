"""A batch over the upsert caps lands whole, in several calls, on milvus-lite and on a real
Milvus server; and the byte cap is what keeps a big batch under the server's message limit."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.config.settings import MilvusSettings
from streamer.core.errors import SinkError
from streamer.storage.store import TEXT_MAX_BYTES, VectorRow, VectorStore, row_bytes
from tests.integration.conftest import BOTH_MILVUS

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

DIM = 8
#: a Milvus 2.3 proxy's proxy.grpc.serverMaxRecvSize
SERVER_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def row(i: int, text_bytes: int) -> VectorRow:
    vector = np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
    return VectorRow(
        id=f"a-{i}",
        vector=vector / np.linalg.norm(vector),
        content_hash=f"hash-{i}",
        model_version="m@1",
        media_type="text",
        text=f"{i:06d}" + "x" * (text_bytes - 6),
        metadata={"i": i},
    )


def test_rows_over_the_byte_cap_land_fully(settings: MilvusSettings) -> None:
    rows = [row(i, 2000) for i in range(300)]
    cap = 10 * row_bytes(rows[0])  # ten rows a call: thirty calls
    store = VectorStore(settings.model_copy(update={"upsert_max_bytes": cap}))
    name = f"{settings.collection_prefix}docs"
    store.ensure_collection(name, DIM, model_version="m@1")
    try:
        assert store.upsert(name, rows) == 300
        assert store.count(name) == 300
        found = store.read_rows(name, [r.id for r in rows])
        assert set(found) == {r.id for r in rows}
        assert found["a-123"].text == rows[123].text and found["a-123"].metadata == {"i": 123}
    finally:
        store.close()


def test_a_batch_over_the_message_limit_lands_in_chunks(
    settings: MilvusSettings, request: pytest.FixtureRequest
) -> None:
    """About 70 MB of rows: one call is over a Milvus 2.3 server's 64 MiB; the default byte
    cap sends it in calls the server takes. A call over the limit is a refusal, which the sink
    splits, not an outage retried for ever."""
    rows = [row(i, TEXT_MAX_BYTES) for i in range(1100)]
    assert sum(map(row_bytes, rows)) > SERVER_MAX_MESSAGE_BYTES
    name = f"{settings.collection_prefix}big"
    store = VectorStore(settings)
    unchunked = VectorStore(settings.model_copy(update={"upsert_max_bytes": 2**40}))
    store.ensure_collection(name, DIM, model_version="m@1")
    try:
        assert store.upsert(name, rows) == 1100
        assert store.count(name) == 1100
        if request.node.callspec.params["milvus_backend"] == "server":
            with pytest.raises(SinkError, match="larger than max"):
                unchunked.upsert(name, rows)  # what one call sent before the byte cap
    finally:
        store.close()
        unchunked.close()
