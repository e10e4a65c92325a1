"""The column-built upsert request is the message pymilvus's own row path builds, byte for
byte: same rows, same vectors (as float32), same JSON, same checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pymilvus import MilvusException
from pymilvus.client.prepare import Prepare

from streamer.storage.store import VectorRow, collection_schema
from streamer.storage.upsert_request import _varint, upsert_request

DIM = 1280
NOW_MS = 1_795_000_000_123


def rows(n: int, dim: int = DIM) -> list[VectorRow]:
    vectors = np.random.default_rng(n).standard_normal((n, dim))  # float64: cast on the way
    return [
        VectorRow(
            id=f"upload-{i}",
            vector=vector,
            content_hash=f"{i:064x}",
            model_version="effnet-lite0@1",
            media_type="image",
            uri=f"file:///media/photo-{i}.jpg",
            text="" if i % 2 else f"caption {i} — ünïcode",
            metadata={"tenant": f"t{i % 3}", "tags": ["a", i], "nested": {"x": 1.5}},
        )
        for i, vector in enumerate(vectors)
    ]


def pymilvus_request(batch: list[VectorRow], fields: list[dict[str, object]]) -> bytes:
    entities = [
        {
            "id": r.id,
            "vector": r.vector.astype(np.float32).tolist(),
            "content_hash": r.content_hash,
            "model_version": r.model_version,
            "media_type": r.media_type,
            "uri": r.uri,
            "text": r.text,
            "metadata": r.metadata,
            "updated_ms": NOW_MS,
        }
        for r in batch
    ]
    request = Prepare.row_upsert_param("c", entities, "", fields, [], enable_dynamic=False)
    return bytes(request.SerializeToString())


@pytest.mark.parametrize("n", [1, 3, 257])
def test_the_request_is_pymilvus_own_byte_for_byte(n: int) -> None:
    fields = collection_schema(DIM).to_dict()["fields"]
    batch = rows(n)
    ours = upsert_request("c", batch, fields, updated_ms=NOW_MS)
    assert ours.num_rows == n
    assert bytes(ours.SerializeToString()) == pymilvus_request(batch, fields)
    vector = next(f for f in ours.fields_data if f.field_name == "vector")
    sent = np.asarray(vector.vectors.float_vector.data, dtype=np.float32).reshape(n, DIM)
    assert np.array_equal(sent, np.stack([r.vector for r in batch]).astype(np.float32))


def test_pymilvus_checks_still_apply() -> None:
    # a string over its field's max_length is refused as pymilvus refuses it
    batch = rows(2)
    long_hash = [batch[0], replace(batch[1], content_hash="f" * 65)]
    with pytest.raises(MilvusException):
        upsert_request("c", long_hash, collection_schema(DIM).to_dict()["fields"])


def test_no_rows_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        upsert_request("c", [], collection_schema(DIM).to_dict()["fields"])


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 5_242_880, 2**35 + 7])
def test_varint_is_protobufs(value: int) -> None:
    from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]

    assert _varint(value) == _VarintBytes(value)


def test_a_field_the_rows_do_not_have_is_refused_by_name() -> None:
    fields = [*collection_schema(DIM).to_dict()["fields"], {"name": "colour", "type": 21}]
    with pytest.raises(ValueError, match="'colour'"):
        upsert_request("c", rows(1), fields)
