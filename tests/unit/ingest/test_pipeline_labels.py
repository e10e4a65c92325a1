"""Classifiers on the ingest path: the rows a batch writes carry the verdicts of the classifiers
attached to their topology and version, and each row stored is one ``media.labels`` event;
what is skipped, dead-lettered or written to another version gets none of theirs, and a
re-delivery stays a no-op although the stored metadata now holds labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from operators.fetch import Fetch
from operators.normalize import Normalize
from streamer.core.errors import SinkError
from streamer.core.messages import LABELS_KEY, UploadMessage
from streamer.ingest.labels import AttachedClassifiers
from streamer.runner.operator import BatchPolicy
from streamer.runner.topology import Topology
from streamer.storage.store import PART_OF, VectorRow
from streamer.testing import FakeDecode, Partition, fake_topology
from streamer.trainer.classifier import Classifier
from tests.unit.ingest.test_parts import PartsEmbed

V1, V2 = "text@1", "text@2"


def classifier(
    name: str, dim: int, seed: int, *, topology: str = "text", version: str = V1
) -> Classifier:
    weights = np.random.default_rng(seed).normal(size=dim).astype(np.float32) * 4
    return Classifier(name, topology, version, weights, bias=0.0)


CATS = classifier("cats", 8, 1)
DOGS = classifier("dogs", 8, 2)
CATS_V2 = classifier("cats-v2", 10, 3, version=V2)  # text@2's model gives 10 dimensions
IMAGES = classifier("photos", 8, 4, topology="image")


class Worker(Partition):
    """An ingest pipeline on the fake text topology, ``attached`` read as a worker would."""

    def __init__(self, root: Path, *attached: Classifier, topology: Topology | None = None) -> None:
        self.topology = topology or fake_topology("text", "text")
        self.attached = list(attached)
        self.reads = 0
        super().__init__(
            [self.topology],
            root,
            classifiers=AttachedClassifiers(self.read, refresh_s=0.0),
        )

    def read(self) -> list[Classifier]:
        self.reads += 1
        return list(self.attached)

    def rows(self, version: str = V1) -> dict[str, VectorRow]:
        return dict(self.store.data[self.topology.collection_name(version)].rows)


def texts(*ids: str, **metadata: object) -> list[UploadMessage]:
    return [UploadMessage(id=i, text=f"about {i}", metadata=dict(metadata)) for i in ids]


def expected_verdicts(row: VectorRow, *classifiers: Classifier) -> dict[str, tuple[float, bool]]:
    return {
        c.name: (float(p), bool(p >= 0.5))
        for c in classifiers
        for p in c.probabilities(row.vector[None, :])
    }


def verdicts(row: VectorRow) -> dict[str, tuple[float, bool]]:
    return {n: (v["score"], v["label"]) for n, v in row.metadata[LABELS_KEY].items()}


def test_stored_rows_carry_the_verdicts_and_each_is_one_event(tmp_path: Path) -> None:
    worker = Worker(tmp_path, CATS, DOGS, IMAGES)
    report = worker.send(*texts("a", "b", "c", tenant="acme"))
    rows = worker.rows()
    assert sorted(rows) == ["a", "b", "c"]
    for row in rows.values():
        assert row.metadata["tenant"] == "acme"
        got, want = verdicts(row), expected_verdicts(row, CATS, DOGS)  # not IMAGES'
        assert got.keys() == want.keys() == {"cats", "dogs"}
        for name in want:
            assert got[name][0] == pytest.approx(want[name][0], abs=1e-6)
            assert got[name][1] is want[name][1]
    labels = sorted({v[1] for row in rows.values() for v in verdicts(row).values()})
    assert labels == [False, True]  # the classifiers said both, so the labels are not constant
    assert sorted(e.id for e in report.labels) == ["a", "b", "c"]
    for event in report.labels:
        assert (event.topology, event.model_version, event.media_type) == ("text", V1, "text")
        assert event.part_of is None
        assert {n: (v.score, v.label) for n, v in event.labels.items()} == verdicts(rows[event.id])
    assert report.counts()["labelled"] == 3
    assert report.counts()["upserted"] == 3


def test_without_attached_classifiers_nothing_is_labelled(tmp_path: Path) -> None:
    worker = Worker(tmp_path, IMAGES)  # attached, but to another topology
    report = worker.send(*texts("a", tenant="acme"))
    assert worker.rows()["a"].metadata == {"tenant": "acme"}
    assert (report.labels, report.counts()["labelled"], report.upserted) == ([], 0, 1)


def test_a_redelivery_is_skipped_although_the_stored_row_holds_labels(tmp_path: Path) -> None:
    worker = Worker(tmp_path, CATS)
    messages = texts("a", "b", tenant="acme")
    worker.send(*messages)
    upserts = worker.store.upsert_calls
    worker.pipeline.cache.client.flushall()
    # Redis forgot: the stored rows' digests (their metadata has the labels) must still match
    again = worker.send(*messages)
    assert (again.skipped, again.embedded, again.reused, again.upserted) == (2, 0, 0, 0)
    assert again.labels == []
    assert worker.store.upsert_calls == upserts


def test_new_metadata_is_labelled_again_on_the_reused_vector(tmp_path: Path) -> None:
    worker = Worker(tmp_path, CATS)
    worker.send(*texts("a", tenant="acme"))
    before = verdicts(worker.rows()["a"])
    report = worker.send(*texts("a", tenant="other"))
    assert (report.reused, report.embedded, report.upserted) == (1, 0, 1)
    row = worker.rows()["a"]
    assert row.metadata["tenant"] == "other"
    assert verdicts(row) == before  # the same vector: the same verdicts
    assert [e.id for e in report.labels] == ["a"]


def test_an_attached_classifier_reaches_the_next_batch(tmp_path: Path) -> None:
    worker = Worker(tmp_path)
    assert worker.send(*texts("a")).labels == []
    worker.attached.append(CATS)
    report = worker.send(*texts("b"))
    assert [e.id for e in report.labels] == ["b"]
    assert LABELS_KEY not in worker.rows()["a"].metadata  # rows stored before stay as they are


def test_a_dead_lettered_asset_has_no_label_event(tmp_path: Path) -> None:
    worker = Worker(tmp_path, CATS)
    report = worker.send(
        UploadMessage(id="ok", text="fine"), UploadMessage(id="broken", text="bad bytes")
    )
    assert [d.stage for d in report.dead_letters] == ["decode"]
    assert [e.id for e in report.labels] == ["ok"]
    assert report.counts()["labelled"] == 1


def test_a_row_the_store_refuses_has_no_label_event(tmp_path: Path) -> None:
    worker = Worker(tmp_path, CATS)
    upsert = worker.store.upsert

    def refusing(name: str, rows: Sequence[VectorRow]) -> int:
        if any(r.id == "poison" for r in rows):
            raise SinkError("row rejected", asset_id="poison")
        return upsert(name, rows)

    worker.store.upsert = refusing  # type: ignore[method-assign]
    report = worker.send(*texts("a", "poison", "b"))
    assert [d.stage for d in report.dead_letters] == ["sink"]
    assert sorted(e.id for e in report.labels) == ["a", "b"]


def test_each_version_is_labelled_by_its_own_classifiers_only(tmp_path: Path) -> None:
    stale = classifier("stale", 8, 6, version="text@0")  # fits text@1's vectors, yet not its
    worker = Worker(tmp_path, CATS, CATS_V2, stale)
    worker.pipeline.versions = lambda topology: [V1, V2]  # during a rollout
    report = worker.send(*texts("a"))
    assert verdicts(worker.rows(V1)["a"]).keys() == {"cats"}
    assert verdicts(worker.rows(V2)["a"]).keys() == {"cats-v2"}
    by_version = {e.model_version: set(e.labels) for e in report.labels}
    assert by_version == {V1: {"cats"}, V2: {"cats-v2"}}
    assert report.counts()["labelled"] == 2  # one row stored in each version


def test_a_classifier_that_does_not_fit_the_vectors_is_not_applied(tmp_path: Path) -> None:
    """Attached under the right topology and version, yet of another model's dimension."""
    worker = Worker(tmp_path, CATS, classifier("wide", 10, 5))
    report = worker.send(*texts("a"))
    assert verdicts(worker.rows()["a"]).keys() == {"cats"}
    assert (report.upserted, report.dead_letters) == (1, [])


def test_every_part_of_an_asset_is_labelled_and_names_its_asset(tmp_path: Path) -> None:
    clips = Topology(
        name="clips",
        media_type="text",
        stages=(Fetch(), FakeDecode(), PartsEmbed(8, batch=BatchPolicy(4, 10)), Normalize()),
        model_version="clips@1",
        metadata_fields=("tenant",),
    )
    worker = Worker(
        tmp_path, classifier("cats", 8, 1, topology="clips", version="clips@1"), topology=clips
    )
    report = worker.send(UploadMessage(id="v", text="2 clips of v", metadata={"tenant": "acme"}))
    rows = worker.rows("clips@1")
    assert sorted(rows) == ["v", "v#s0", "v#s1"]
    for row in rows.values():
        assert verdicts(row).keys() == {"cats"}
    events = {e.id: e for e in report.labels}
    assert sorted(events) == ["v", "v#s0", "v#s1"]
    assert [events[i].part_of for i in ("v", "v#s0", "v#s1")] == [None, "v", "v"]
    assert rows["v#s1"].metadata[PART_OF] == "v"
    assert report.upserted == 1  # one asset
    assert report.counts()["labelled"] == 3  # three rows
