"""Assets with parts (a video's segments): their rows follow the asset's. Written beside it
(``<id>#<key>``, the asset's metadata with the part's and ``segment_of``), replaced with it
(no stale part stays), deleted with it, and never copied from another asset's row (a stored
vector comes without its parts: the content is embedded again)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from operators.fetch import Fetch
from operators.normalize import Normalize
from streamer.core.messages import UploadMessage
from streamer.runner.operator import BatchPolicy, Part, WithParts
from streamer.runner.topology import Topology
from streamer.storage.store import PART_OF, VectorRow
from streamer.testing import FakeDecode, FakeEmbed, FakeModel, Partition

POOL = ThreadPoolExecutor(2)


class PartsModel(FakeModel):
    """The fake model's vector, and ``n`` parts for content that starts with ``n``: part k
    covers seconds [2k, 2k+2)."""

    def __call__(self, batch: Any) -> Any:  # type: ignore[override]
        vectors = super().__call__(batch)
        out: list[npt.NDArray[np.float32] | WithParts] = []
        for data, vector in zip(batch, vectors, strict=True):
            n = int(data.split(b" ")[0]) if data[:1].isdigit() else 0
            parts = tuple(
                Part(f"s{k}", vector + k + 1, {"start_s": 2.0 * k, "end_s": 2.0 * k + 2})
                for k in range(n)
            )
            out.append(WithParts(vector, parts) if parts else vector)
        return out


@dataclass(frozen=True)
class PartsEmbed(FakeEmbed):
    gives_parts = True

    def load(self, device: str, precision: str) -> PartsModel:
        return PartsModel(self.dim, self.tally)


class Worker(Partition):
    def __init__(self, root: Path) -> None:
        self.embed = PartsEmbed(8, batch=BatchPolicy(4, 10))
        self.topology = Topology(
            name="clips",
            media_type="text",
            stages=(Fetch(), FakeDecode(), self.embed, Normalize()),
            model_version="clips@1",
            metadata_fields=("tenant",),
        )
        super().__init__([self.topology], root)

    @property
    def rows(self) -> dict[str, VectorRow]:
        return dict(self.store.data[self.topology.collection_name("clips@1")].rows)


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    return Worker(tmp_path)


def clip(asset_id: str, text: str) -> UploadMessage:
    return UploadMessage(id=asset_id, text=text, metadata={"tenant": "acme"})


def test_an_assets_parts_are_rows_beside_its_own(worker: Worker) -> None:
    report = worker.send(clip("a", "3 clips of a"))
    assert (report.embedded, report.upserted, report.dead_letters) == (1, 1, [])
    rows = worker.rows
    assert sorted(rows) == ["a", "a#s0", "a#s1", "a#s2"]
    assert PART_OF not in rows["a"].metadata
    assert rows["a#s1"].metadata == {
        "tenant": "acme", "start_s": 2.0, "end_s": 4.0, PART_OF: "a"
    }  # fmt: skip
    assert rows["a#s1"].content_hash == rows["a"].content_hash
    for row in rows.values():  # each normalised on its own
        assert np.linalg.norm(row.vector) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(rows["a#s0"].vector, rows["a"].vector)


def test_new_content_replaces_the_parts_no_stale_part_stays(worker: Worker) -> None:
    worker.send(clip("a", "3 clips of a"))
    worker.send(clip("a", "1 clip of a, cut"))
    assert sorted(worker.rows) == ["a", "a#s0"]
    worker.send(clip("a", "no parts now"))
    assert sorted(worker.rows) == ["a"]


def test_unchanged_content_keeps_its_parts_without_the_model(worker: Worker) -> None:
    worker.send(clip("a", "2 clips"))
    calls = worker.embed.tally.calls
    report = worker.send(clip("a", "2 clips"))
    assert report.skipped == 1 and worker.embed.tally.calls == calls
    assert sorted(worker.rows) == ["a", "a#s0", "a#s1"]


def test_the_same_content_under_another_id_is_embedded_again_with_its_parts(
    worker: Worker,
) -> None:
    worker.send(clip("a", "2 clips"))
    calls = worker.embed.tally.calls
    report = worker.send(clip("b", "2 clips"))
    assert (report.reused, report.embedded) == (0, 1)
    assert worker.embed.tally.calls == calls + 1
    assert sorted(worker.rows) == ["a", "a#s0", "a#s1", "b", "b#s0", "b#s1"]
    assert worker.rows["b#s1"].metadata[PART_OF] == "b"


def test_copies_in_one_batch_share_the_parts_of_one_model_call(worker: Worker) -> None:
    report = worker.send(clip("a", "2 clips"), clip("b", "2 clips"))
    assert (report.embedded, report.reused, report.upserted) == (1, 1, 2)
    assert worker.embed.tally.calls == 1
    assert sorted(worker.rows) == ["a", "a#s0", "a#s1", "b", "b#s0", "b#s1"]
    np.testing.assert_allclose(worker.rows["a#s1"].vector, worker.rows["b#s1"].vector)


def test_a_delete_takes_the_parts_with_it(worker: Worker) -> None:
    worker.send(clip("a", "3 clips of a"), clip("b", "1 clip of b"))
    report = worker.send(UploadMessage(id="a", op="delete"))
    assert report.deleted == 1
    assert sorted(worker.rows) == ["b", "b#s0"]
