"""A batch whose view of the registry names a retired version: that version is left alone
(not created, not written, its collection dropped if the batch made it again), and the batch
goes on in the others without a dead letter. Deletes reach the serving version first."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from streamer.core.errors import StreamerError
from streamer.core.messages import UploadMessage
from streamer.runner.topology import Topology
from streamer.testing import Partition, fake_topology

POOL = ThreadPoolExecutor(2)
V1, V2 = "text@1", "text@2"


class Worker(Partition):
    """An ingest pipeline whose view names both versions, and a set of tombstones."""

    def __init__(self, root: Path) -> None:
        self.topology = fake_topology("text", "text")
        self.tombstones: set[str] = set()
        self.reads = 0
        super().__init__(
            [self.topology],
            root,
            versions=self.versions,
            retired=lambda topology, version: version in self.tombstones,
        )

    def versions(self, topology: Topology) -> list[str]:
        self.reads += 1
        return [V1, V2]

    def collection(self, version: str) -> str:
        return self.topology.collection_name(version)


def texts(*ids: str) -> list[UploadMessage]:
    return [UploadMessage(id=i, text=f"about {i}") for i in ids]


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    return Worker(tmp_path)


def test_a_retired_version_is_neither_created_nor_written(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    worker.tombstones.add(V2)
    with caplog.at_level(logging.INFO, logger="streamer.ingest.pipeline"):
        first = worker.send(*texts("a", "b"))
        second = worker.send(*texts("c"))
    assert worker.collection(V2) not in worker.store.data
    assert set(worker.store.data[worker.collection(V1)].rows) == {"a", "b", "c"}
    assert (first.upserted, second.upserted) == (2, 1)
    assert first.dead_letters == second.dead_letters == []
    said = [r for r in caplog.records if r.getMessage() == "not writing to a retired version"]
    assert len(said) == 1 and said[0].levelno == logging.INFO  # once, not once a batch


def test_a_collection_made_again_after_the_retire_is_dropped(worker: Worker) -> None:
    """The tombstone appears between the batch's first look and its create (the retire's own
    drop came first): the check after the create finds it and drops what the batch made."""
    ensure = worker.store.ensure_collection

    def retire_then_ensure(name: str, *args: Any, **kwargs: Any) -> str:
        if name == worker.collection(V2):
            worker.tombstones.add(V2)
        return ensure(name, *args, **kwargs)

    worker.store.ensure_collection = retire_then_ensure  # type: ignore[method-assign]
    report = worker.send(*texts("a"))
    assert worker.collection(V2) not in worker.store.data
    assert report.dead_letters == [] and report.upserted == 1


def test_a_version_retired_while_its_rows_are_embedded_gets_none(worker: Worker) -> None:
    worker.send(*texts("a"))
    read_rows = worker.store.read_rows

    def retire_during_lookup(name: str, ids: Sequence[str], **kwargs: Any) -> Any:
        if name == worker.collection(V2):
            worker.tombstones.add(V2)
        return read_rows(name, ids, **kwargs)

    worker.store.read_rows = retire_during_lookup  # type: ignore[method-assign]
    upserts = worker.store.upsert_calls
    report = worker.send(*texts("b"))
    assert worker.store.upsert_calls == upserts + 1  # the serving version's only
    assert worker.collection(V2) not in worker.store.data
    assert report.dead_letters == [] and report.upserted == 1


def test_a_view_naming_only_retired_versions_is_read_again(worker: Worker) -> None:
    worker.tombstones.update({V1, V2})
    with pytest.raises(StreamerError, match="is retired"):
        worker.send(*texts("a"))
    assert worker.reads == 2
    assert worker.store.data == {}


def test_deletes_reach_the_serving_version_first(worker: Worker) -> None:
    worker.send(*texts("a", "b"))
    worker.store.point_alias(worker.topology.alias(), worker.collection(V2))  # promoted
    order: list[str] = []
    delete = worker.store.delete

    def noted(name: str, ids: Sequence[str], *, with_parts: bool = False) -> None:
        order.append(name)
        delete(name, ids, with_parts=with_parts)

    worker.store.delete = noted  # type: ignore[method-assign]
    report = worker.send(UploadMessage(id="a", op="delete"))
    assert report.deleted == 1
    assert order == [worker.collection(V2), worker.collection(V1)]
    assert all(set(c.rows) == {"b"} for c in worker.store.data.values())
