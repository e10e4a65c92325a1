"""Classifiers on the stream: the verdicts ``label_rows`` writes into a row's metadata (the
classifier's own probabilities, in one product for all), the ``media.labels`` events of the
rows that carry them, and the cached view of the attached classifiers a worker reads."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest
import redis

from streamer.core.messages import LABELS_KEY, LabelEvent, Verdict
from streamer.ingest.labels import AttachedClassifiers, label_events, label_rows
from streamer.storage.store import PART_OF, VectorRow
from streamer.trainer.classifier import Classifier, ClassifierError

DIM = 4


def classifier(
    name: str,
    weights: Sequence[float],
    bias: float = 0.0,
    *,
    topology: str = "photos",
    version: str = "photos@1",
) -> Classifier:
    return Classifier(
        name=name,
        topology=topology,
        model_version=version,
        weights=np.asarray(weights, dtype=np.float32),
        bias=bias,
    )


def row(row_id: str, vector: Sequence[float], **metadata: object) -> VectorRow:
    return VectorRow(
        id=row_id,
        vector=np.asarray(vector, dtype=np.float32),
        content_hash=f"hash-{row_id}",
        model_version="photos@1",
        media_type="image",
        uri=f"file:///media/{row_id}.jpg",
        metadata=dict(metadata),
    )


# cats: positive along the first axis; dogs: along the second, with a bias against
CATS = classifier("cats", [3.0, 0.0, 0.0, 0.0])
DOGS = classifier("dogs", [0.0, 2.0, 0.5, 0.0], bias=-0.5)
ROWS = [
    row("a", [1.0, 0.0, 0.0, 0.0], tenant="acme"),
    row("b", [-1.0, 1.0, 0.0, 0.0]),
    row("c", [0.0, 0.0, 0.6, 0.8], tenant="other"),
]


def test_scores_are_the_classifiers_probabilities_and_labels_their_half() -> None:
    labelled = label_rows([CATS, DOGS], ROWS)
    vectors = np.stack([r.vector for r in ROWS])
    for c in (CATS, DOGS):
        expected = c.probabilities(vectors)
        got = [r.metadata[LABELS_KEY][c.name]["score"] for r in labelled]
        np.testing.assert_allclose(got, expected, atol=1e-6)
    verdicts = [{name: v["label"] for name, v in r.metadata[LABELS_KEY].items()} for r in labelled]
    # a: cats 0.95 / dogs 0.38; b: cats 0.05 / dogs 0.82; c: cats 0.5 (logit 0) / dogs 0.45
    assert verdicts == [
        {"cats": True, "dogs": False},
        {"cats": False, "dogs": True},
        {"cats": True, "dogs": False},
    ]
    assert labelled[2].metadata[LABELS_KEY]["cats"]["score"] == 0.5  # the boundary is a yes


def test_labelling_keeps_the_row_and_its_metadata() -> None:
    labelled = label_rows([CATS], ROWS)
    assert [r.id for r in labelled] == ["a", "b", "c"]
    assert labelled[0].metadata["tenant"] == "acme"
    assert set(labelled[0].metadata) == {"tenant", LABELS_KEY}
    assert labelled[1].metadata.keys() == {LABELS_KEY}
    np.testing.assert_array_equal(labelled[2].vector, ROWS[2].vector)
    assert (labelled[0].uri, labelled[0].content_hash) == (ROWS[0].uri, "hash-a")
    assert LABELS_KEY not in ROWS[0].metadata  # the rows given are left as they were


def test_a_classifier_of_another_dimension_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wide = classifier("wide", [1.0] * (DIM + 2))
    with caplog.at_level(logging.ERROR, logger="streamer.ingest.labels"):
        labelled = label_rows([CATS, wide, DOGS], ROWS)
    assert all(r.metadata[LABELS_KEY].keys() == {"cats", "dogs"} for r in labelled)
    [said] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert said.getMessage() == "classifier does not fit the rows: not applied"
    fields = vars(said)
    assert (fields["classifier"], fields["weights"], fields["vectors"]) == ("wide", DIM + 2, DIM)


def test_only_misfits_leave_the_rows_as_they_were(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="streamer.ingest.labels"):
        labelled = label_rows([classifier("wide", [1.0] * (DIM + 1))], ROWS)
    assert [r.metadata for r in labelled] == [r.metadata for r in ROWS]
    assert len(caplog.records) == 1


def test_no_classifiers_no_labels() -> None:
    unchanged = label_rows([], ROWS)
    assert all(a is b for a, b in zip(unchanged, ROWS, strict=True))
    assert label_rows([CATS], []) == []


def test_events_only_for_rows_with_verdicts() -> None:
    part = VectorRow(
        id="v#s0",
        vector=np.asarray([0.9, 0.1, 0.0, 0.0], dtype=np.float32),
        content_hash="hash-v",
        model_version="photos@1",
        media_type="video",
        uri="file:///media/v.mp4",
        metadata={"start_s": 0.0, PART_OF: "v"},
    )
    text = VectorRow(
        id="t",
        vector=np.asarray([-1.0, 0.0, 0.0, 0.0], dtype=np.float32),
        content_hash="hash-t",
        model_version="photos@1",
        media_type="text",
        text="a cat",
    )
    labelled = label_rows([CATS], [ROWS[0], part, text])
    events = label_events("photos", [*labelled, ROWS[1]])  # ROWS[1]: never labelled
    assert [e.id for e in events] == ["a", "v#s0", "t"]
    a, seg, t = events
    assert (a.topology, a.model_version, a.media_type) == ("photos", "photos@1", "image")
    assert (a.uri, a.part_of) == ("file:///media/a.jpg", None)
    assert a.labels == {
        "cats": Verdict(score=labelled[0].metadata[LABELS_KEY]["cats"]["score"], label=True)
    }
    assert (seg.part_of, seg.media_type, seg.uri) == ("v", "video", "file:///media/v.mp4")
    assert t.uri is None  # an inline text has no uri
    assert t.labels["cats"].label is False
    assert events[0].labelled_ms > 1_600_000_000_000  # ms since the epoch


def test_an_event_round_trips_through_its_bytes() -> None:
    part = row("v#s1", [1.0, 0.0, 0.0, 0.0], **{PART_OF: "v"})
    [event] = label_events("photos", label_rows([CATS, DOGS], [part]))
    back = LabelEvent.model_validate_json(event.to_bytes())
    assert back == event
    assert back.part_of == "v"
    assert set(back.labels) == {"cats", "dogs"}
    [plain] = label_events("photos", label_rows([CATS], [ROWS[1]]))
    assert b"part_of" not in plain.to_bytes()  # absent, not null


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """What ``SavedClassifiers.attached`` would answer, counting the reads."""

    def __init__(self, *classifiers: Classifier) -> None:
        self.classifiers = list(classifiers)
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self) -> list[Classifier]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return list(self.classifiers)


def test_the_attached_set_is_read_at_most_every_refresh_s() -> None:
    reads, clock = Reads(CATS), Clock()
    attached = AttachedClassifiers(reads, refresh_s=5.0, clock=clock)
    assert attached("photos", "photos@1") == [CATS]
    reads.classifiers.append(DOGS)  # attached meanwhile
    clock.now += 4.9
    assert attached("photos", "photos@1") == [CATS]
    assert reads.calls == 1
    clock.now += 0.1
    assert attached("photos", "photos@1") == [CATS, DOGS]
    assert reads.calls == 2


def test_only_the_topology_and_version_of_a_classifier_get_it() -> None:
    other_version = classifier("cats-v2", [1.0] * DIM, version="photos@2")
    other_topology = classifier("news", [1.0] * DIM, topology="texts", version="photos@1")
    reads = Reads(CATS, other_version, other_topology, DOGS)
    attached = AttachedClassifiers(reads, refresh_s=5.0, clock=Clock())
    assert attached("photos", "photos@1") == [CATS, DOGS]
    assert attached("photos", "photos@2") == [other_version]
    assert attached("texts", "photos@1") == [other_topology]
    assert attached("videos", "videos@1") == []
    assert reads.calls == 1  # one read serves every topology


def test_redis_down_keeps_the_set_last_seen_until_the_next_refresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads, clock = Reads(CATS), Clock()
    attached = AttachedClassifiers(reads, refresh_s=5.0, clock=clock)
    assert attached("photos", "photos@1") == [CATS]
    clock.now += 10
    reads.fail = redis.ConnectionError("Redis is down")
    with caplog.at_level(logging.WARNING, logger="streamer.ingest.labels"):
        assert attached("photos", "photos@1") == [CATS]  # the set last seen
    assert "attached classifiers unreadable" in caplog.text
    assert attached("photos", "photos@1") == [CATS]
    assert reads.calls == 2  # not asked again at every batch: at the next refresh
    reads.fail = ClassifierError("not a saved classifier")  # one saved entry is corrupt
    clock.now += 10
    assert attached("photos", "photos@1") == [CATS]
    reads.fail = None
    reads.classifiers = [DOGS]
    clock.now += 10
    assert attached("photos", "photos@1") == [DOGS]  # read again once it answers
    assert reads.calls == 4


def test_before_any_read_succeeds_nothing_is_attached() -> None:
    reads = Reads(CATS)
    reads.fail = redis.ConnectionError("Redis is down")
    attached = AttachedClassifiers(reads, refresh_s=5.0, clock=Clock())
    assert attached("photos", "photos@1") == []


def test_a_bug_in_the_reader_is_not_hidden() -> None:
    reads = Reads(CATS)
    reads.fail = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        AttachedClassifiers(reads, refresh_s=5.0, clock=Clock())("photos", "photos@1")
