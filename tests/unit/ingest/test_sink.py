"""The sink isolates the rows the store refuses by bisecting the batch: every other row is
stored, each refused one is a ``sink`` dead letter, and the upserts it costs grow with the
logarithm of the batch, not with its size."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from streamer.core.errors import SinkError
from streamer.core.messages import UploadMessage
from streamer.ingest.changes import Content
from streamer.ingest.intake import Asset
from streamer.ingest.records import IngestReport, Record
from streamer.ingest.sink import Sink, row_of
from streamer.storage.store import VectorRow
from streamer.testing import InMemoryVectorStore

COLLECTION = "images"
DIM = 4


class RefusingStore(InMemoryVectorStore):
    """Refuses, for good, any upsert that holds one of ``refused`` (a row Milvus cannot take)."""

    def __init__(self, refused: Collection[str], *, max_rows: int | None = None) -> None:
        """``max_rows``: calls with more rows are refused, as a server refuses a message over
        its size limit."""
        super().__init__()
        self.refused = set(refused)
        self.max_rows = max_rows
        self.ensure_collection(COLLECTION, DIM)

    def upsert(self, name: str, rows: Sequence[VectorRow]) -> int:
        bad = [r.id for r in rows if r.id in self.refused]
        if bad:
            self.upsert_calls += 1
            raise SinkError(f"the field text of {bad[0]} is too long")
        if self.max_rows is not None and len(rows) > self.max_rows:
            self.upsert_calls += 1
            raise SinkError("received message larger than max")
        return super().upsert(name, rows)


async def direct(what: str, fn: Callable[[], Any]) -> Any:
    return fn()


def contents(n: int) -> list[Content]:
    out = []
    for i in range(n):
        upload = UploadMessage(id=f"a-{i}", uri=f"s3://media/{i}.jpg", metadata={"i": i})
        record = Record(json.dumps({"id": upload.id}).encode(), None, "media.uploads", 0, i)
        out.append(Content(Asset(record, upload), content_hash=f"h{i}", digest=f"d{i}"))
    return out


def write(store: RefusingStore, n: int) -> tuple[list[Content], list[Content], IngestReport]:
    given = contents(n)
    vector = np.full(DIM, 0.5, dtype=np.float32)
    rows = [row_of(c, vector, version="m@1", media_type="image") for c in given]
    report = IngestReport()
    stored = asyncio.run(Sink(store, direct).write(COLLECTION, rows, given, report))
    return given, stored, report


def test_a_batch_the_store_takes_is_one_upsert() -> None:
    store = RefusingStore(refused=())
    given, stored, report = write(store, 100)
    assert stored == given
    assert store.upsert_calls == 1 and not report.dead_letters


def test_one_bad_row_among_4000_costs_a_logarithmic_number_of_upserts() -> None:
    store = RefusingStore(refused={"a-2718"})
    given, stored, report = write(store, 4000)
    assert [c.asset.id for c in stored] == [c.asset.id for c in given if c.asset.id != "a-2718"]
    assert set(store.ids(COLLECTION)) == {f"a-{i}" for i in range(4000)} - {"a-2718"}
    [letter] = report.dead_letters
    assert letter.stage == "sink" and letter.source_offset == 2718
    assert "asset 'a-2718'" in letter.error_message and "too long" in letter.error_message
    # the whole batch, then at each of the ~12 halvings one half stored and one refused
    assert store.upsert_calls <= 1 + 2 * math.ceil(math.log2(4000))


def test_each_bad_row_is_its_own_dead_letter() -> None:
    bad = {"a-0", "a-17", "a-18", "a-511", "a-999"}
    store = RefusingStore(refused=bad)
    given, stored, report = write(store, 1000)
    assert [c.asset.id for c in stored] == [c.asset.id for c in given if c.asset.id not in bad]
    assert len(store.ids(COLLECTION)) == 1000 - len(bad)
    assert [d.source_offset for d in report.dead_letters] == [0, 17, 18, 511, 999]
    assert {d.stage for d in report.dead_letters} == {"sink"}
    assert store.upsert_calls <= 1 + 2 * len(bad) * math.ceil(math.log2(1000))


def test_a_batch_refused_row_by_row_still_ends() -> None:
    store = RefusingStore(refused={f"a-{i}" for i in range(8)})
    _, stored, report = write(store, 8)
    assert stored == [] and len(report.dead_letters) == 8
    assert store.upsert_calls == 2 * 8 - 1  # every node of the bisection tree, once


def test_a_batch_too_large_for_one_call_is_split_until_it_fits() -> None:
    store = RefusingStore(refused=(), max_rows=300)
    given, stored, report = write(store, 1000)
    assert stored == given and not report.dead_letters
    assert len(store.ids(COLLECTION)) == 1000
