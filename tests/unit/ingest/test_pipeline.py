"""The ingest path with in-process fakes of Milvus, Redis and the model."""

import asyncio
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from operators.fetch import context_fetcher, path_to_uri
from streamer.config.settings import FetchSettings
from streamer.core.errors import DecodeError, SinkError
from streamer.core.stats import Stats
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.pipeline import IngestPipeline, IngestReport, Record
from streamer.runner.context import Context
from streamer.runner.operator import CpuOperator
from streamer.runner.plans import Plans, Tuner
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.testing import (
    InMemoryHashes,
    InMemoryVectorStore,
    fake_topology,
    tally,
    transient,
)

POOL = ThreadPoolExecutor(2)


class Explode(CpuOperator[bytes, bytes]):
    """A decoder with a bug: it raises something no one foresaw."""

    name = "decode"
    takes = bytes
    gives = bytes
    error = DecodeError

    def apply(self, item: bytes) -> bytes:
        raise ZeroDivisionError("division by zero in a transform")


class Harness:
    def __init__(
        self,
        root: Path,
        batch: int = 4,
        *,
        topologies: Sequence[Topology] | None = None,
        tuner: Tuner | None = None,
    ) -> None:
        self.root = root
        self.store = InMemoryVectorStore()
        self.hashes = InMemoryHashes()
        self.image = fake_topology("image", "image", dim=6, batch=batch)
        self.text = fake_topology("text", "text", dim=8, batch=batch)
        self.topologies = list(topologies or [self.image, self.text])
        fetch = FetchSettings(media_roots=(root,), max_bytes=1000)
        self.plans = Plans(Context(fetch, device="cpu"), tuner=tuner)
        self.pipeline = IngestPipeline(
            topologies=self.topologies,
            plans=self.plans,
            runner=Runner(POOL, POOL, batch_size=self.plans.batch_size),
            store=self.store,
            cache=DedupeCache(self.hashes, prefix="t"),  # type: ignore[arg-type]
            stats=Stats(None, prefix="t"),
        )
        self.offset = 0

    def record(self, value: object) -> Record:
        self.offset += 1
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return Record(value=raw, key=None, topic="media.uploads", partition=0, offset=self.offset)

    def run(self, *values: object) -> IngestReport:
        return asyncio.run(self.pipeline.process([self.record(v) for v in values]))

    def image_upload(self, name: str, content: bytes) -> dict[str, object]:
        path = self.root / f"{name}.jpg"
        path.write_bytes(content)
        return {"id": name, "uri": path_to_uri(path)}

    @property
    def model_calls(self) -> int:
        return sum(tally(t).calls for t in self.topologies)

    def rows(self, topology: str = "text") -> dict[str, object]:
        chosen = self.image if topology == "image" else self.text
        return dict(self.store.data[chosen.collection_name()].rows)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_uploads_become_rows_in_their_topology(h: Harness) -> None:
    report = h.run(
        h.image_upload("a", b"img-a"), {"id": "t1", "text": "hello"}, {"id": "t2", "text": "x"}
    )
    assert report.upserted == 3
    assert report.embedded == 3
    assert set(h.rows("image")) == {"a"}
    assert set(h.rows("text")) == {"t1", "t2"}
    assert h.store.aliases == {
        "image": h.image.collection_name(),
        "text": h.text.collection_name(),
    }


def test_model_batches_follow_the_policy(h: Harness) -> None:
    h.run(*({"id": f"t{i}", "text": f"text {i}"} for i in range(10)))
    assert tally(h.text).batches == [4, 4, 2]


def test_redelivery_does_no_model_work(h: Harness) -> None:
    messages = [{"id": f"t{i}", "text": f"text {i}"} for i in range(5)]
    h.run(*messages)
    calls, upserts = h.model_calls, h.store.upsert_calls
    report = h.run(*messages)
    assert report.skipped == 5
    assert h.model_calls == calls
    assert h.store.upsert_calls == upserts


def test_without_redis_the_store_answers_and_nothing_is_embedded_twice(h: Harness) -> None:
    messages = [{"id": f"t{i}", "text": f"text {i}"} for i in range(5)]
    h.run(*messages)
    calls = h.model_calls
    h.hashes.flushall()
    assert h.run(*messages).skipped == 5
    h.hashes.down = True
    assert h.run(*messages).skipped == 5
    assert h.model_calls == calls
    assert len(h.rows()) == 5


def test_changed_content_is_embedded_again(h: Harness) -> None:
    h.run({"id": "t", "text": "one"})
    report = h.run({"id": "t", "text": "two"})
    assert report.embedded == 1
    assert h.rows()["t"].text == "two"  # type: ignore[attr-defined]


def test_changed_metadata_reuses_the_stored_vector(h: Harness) -> None:
    h.run({"id": "t", "text": "same", "metadata": {"v": 1}})
    before = h.rows()["t"].vector  # type: ignore[attr-defined]
    calls = h.model_calls
    report = h.run({"id": "t", "text": "same", "metadata": {"v": 2}})
    assert (report.reused, report.embedded) == (1, 0)
    assert h.model_calls == calls
    row = h.rows()["t"]
    assert row.metadata == {"v": 2}  # type: ignore[attr-defined]
    assert (row.vector == before).all()  # type: ignore[attr-defined]


def test_delete_removes_the_asset_from_every_version(h: Harness) -> None:
    h.run({"id": "t", "text": "x"})
    h.store.ensure_collection(h.text.collection_name("text@2"), 8)
    h.store.upsert(h.text.collection_name("text@2"), [h.rows()["t"]])  # type: ignore[list-item]
    report = h.run({"id": "t", "op": "delete"})
    assert report.deleted == 1
    assert all(not c.rows for c in h.store.data.values())
    # the delete also cleared the cache: re-adding the same content embeds it again
    assert h.run({"id": "t", "text": "x"}).embedded == 1


def test_last_message_per_id_wins_within_a_batch(h: Harness) -> None:
    report = h.run(
        {"id": "t", "text": "first"}, {"id": "t", "op": "delete"}, {"id": "t", "text": "last"}
    )
    assert h.rows()["t"].text == "last"  # type: ignore[attr-defined]
    assert report.embedded == 1


def test_bad_input_goes_to_dead_letters_and_the_rest_goes_on(h: Harness) -> None:
    (h.root.parent / "outside.jpg").write_bytes(b"x")
    report = h.run(
        b"{broken json",
        {"id": "noimg", "uri": path_to_uri(h.root / "missing.jpg")},
        {"id": "escape", "uri": path_to_uri(h.root.parent / "outside.jpg")},
        h.image_upload("corrupt", b"bad bytes"),
        {"id": "ok", "text": "fine"},
    )
    stages = sorted((d.stage, d.error_class) for d in report.dead_letters)
    assert stages == [
        ("decode", "DecodeError"),
        ("fetch", "FetchError"),
        ("fetch", "FetchError"),
        ("validate", "InvalidMessage"),
    ]
    assert set(h.rows()) == {"ok"}
    assert report.dead_letters[0].value == b"{broken json"
    assert report.dead_letters[0].source_offset == 1


def test_a_model_failure_is_isolated_to_its_item(h: Harness) -> None:
    report = h.run(*({"id": f"t{i}", "text": "boom" if i == 2 else f"ok {i}"} for i in range(4)))
    assert [d.stage for d in report.dead_letters] == ["embed"]
    assert "asset 't2'" in report.dead_letters[0].error_message
    assert set(h.rows()) == {"t0", "t1", "t3"}


def test_store_outage_is_retried_not_dropped(h: Harness) -> None:
    h.store.fail_next = [transient(), transient()]
    report = h.run({"id": "t", "text": "x"})
    assert report.upserted == 1
    assert set(h.rows()) == {"t"}


def test_permanent_sink_rejection_is_isolated_to_its_rows(h: Harness) -> None:
    h.run({"id": "seed", "text": "seed"})
    original = h.store.upsert
    calls: list[int] = []

    def flaky(name: str, rows: list) -> int:  # type: ignore[type-arg]
        calls.append(len(rows))
        if any(r.id == "poison" for r in rows):
            raise SinkError("row rejected", asset_id="poison")
        return original(name, rows)

    h.store.upsert = flaky  # type: ignore[method-assign]
    report = h.run(
        {"id": "a", "text": "1"}, {"id": "poison", "text": "2"}, {"id": "b", "text": "3"}
    )
    assert [d.stage for d in report.dead_letters] == ["sink"]
    assert {"a", "b"} <= set(h.rows())
    assert "poison" not in h.rows()
    assert calls[0] == 3


def test_unknown_media_type_has_no_topology(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h = Harness(tmp_path, topologies=[h.text])
    report = h.run(h.image_upload("a", b"img"))
    assert report.dead_letters[0].stage == "validate"
    assert "no topology" in report.dead_letters[0].error_message


def test_an_unforeseen_decoder_failure_is_isolated(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h = Harness(tmp_path, topologies=[h.text.replacing(decode=Explode())])
    report = h.run({"id": "t", "text": "x"})
    assert [(d.stage, d.error_class) for d in report.dead_letters] == [("decode", "DecodeError")]
    assert "ZeroDivisionError" in report.dead_letters[0].error_message


def test_seen_content_under_new_ids_needs_no_model(h: Harness) -> None:
    h.run(*({"id": f"a{i}", "text": f"text {i}"} for i in range(5)))
    calls = h.model_calls
    report = h.run(*({"id": f"b{i}", "text": f"text {i}", "metadata": {"copy": True}}
                     for i in range(5)))  # fmt: skip
    assert (report.embedded, report.reused, report.upserted) == (0, 5, 5)
    assert h.model_calls == calls
    rows = h.rows()
    for i in range(5):
        assert (rows[f"b{i}"].vector == rows[f"a{i}"].vector).all()  # type: ignore[attr-defined]
        assert rows[f"b{i}"].metadata == {"copy": True}  # type: ignore[attr-defined]


def test_the_same_new_content_in_one_batch_goes_through_the_model_once(h: Harness) -> None:
    report = h.run(*({"id": f"c{i}", "text": "identical"} for i in range(6)))
    assert (report.embedded, report.reused, report.upserted) == (1, 5, 6)
    assert tally(h.text).batches == [1]


def test_identical_bad_content_fails_for_every_id(h: Harness) -> None:
    report = h.run(*({"id": f"c{i}", "text": "bad content"} for i in range(3)))
    assert sorted(d.error_message.split("'")[1] for d in report.dead_letters) == ["c0", "c1", "c2"]


def test_a_deleted_holder_is_not_reused(h: Harness) -> None:
    h.run({"id": "a", "text": "shared"})
    h.run({"id": "a", "op": "delete"})
    report = h.run({"id": "b", "text": "shared"})
    assert (report.embedded, report.reused) == (1, 0)


def test_without_redis_seen_content_is_embedded_again_and_stored_once(h: Harness) -> None:
    h.run({"id": "a", "text": "shared"})
    h.hashes.flushall()
    report = h.run({"id": "b", "text": "shared"})
    assert (report.embedded, report.upserted) == (1, 1)
    assert set(h.rows()) == {"a", "b"}


def test_during_a_rollout_rows_go_to_every_target_version(h: Harness) -> None:
    candidate = "text@2"
    h.pipeline.versions = lambda topology: [topology.model_version, candidate]
    report = h.run({"id": "t", "text": "x"}, {"id": "bad", "text": "bad content"})
    assert report.upserted == 2  # one row in each version
    assert [d.stage for d in report.dead_letters] == ["decode"]  # once, not once per version
    shadow = h.store.data[h.text.collection_name(candidate)]
    assert set(shadow.rows) == {"t"}
    assert shadow.rows["t"].vector.shape == (10,)
    assert shadow.rows["t"].model_version == candidate
    assert h.store.aliases["text"] == h.text.collection_name()  # the alias stays on serving
    h.run({"id": "t", "op": "delete"})
    assert not shadow.rows and not h.rows()


def _settled(path: Path, age_s: float = 60.0) -> None:
    """Backdate a file, as a file uploaded a while ago would be."""
    past = time.time() - age_s
    os.utime(path, (past, past))


def test_a_settled_unchanged_file_is_not_even_read_on_redelivery(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = h.image_upload("a", b"img-a")
    _settled(h.root / "a.jpg")
    assert h.run(message).embedded == 1
    reads: list[str] = []
    fetcher = context_fetcher(h.plans.context)
    original = fetcher.fetch
    monkeypatch.setattr(fetcher, "fetch", lambda uri: reads.append(uri) or original(uri))
    again = h.run(message)
    assert (again.skipped, again.embedded, reads) == (1, 0, [])
    # new metadata: read again, and the stored vector reused
    changed = h.run({**message, "metadata": {"tenant": "b"}})
    assert (changed.reused, changed.embedded, len(reads)) == (1, 0, 1)
    # new content (another size and time): read and embedded again
    (h.root / "a.jpg").write_bytes(b"img-a, edited")
    _settled(h.root / "a.jpg", age_s=30)
    edited = h.run({**message, "metadata": {"tenant": "b"}})
    assert (edited.embedded, len(reads)) == (1, 2)


def test_a_file_modified_just_now_is_always_read(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = h.image_upload(
        "a", b"img-a"
    )  # written now: its timestamp may not tell a rewrite apart
    h.run(message)
    reads: list[str] = []
    fetcher = context_fetcher(h.plans.context)
    original = fetcher.fetch
    monkeypatch.setattr(fetcher, "fetch", lambda uri: reads.append(uri) or original(uri))
    assert h.run(message).skipped == 1
    assert len(reads) == 1  # read and hashed: the content hash said it is current


def test_redis_flushed_means_sources_are_read_again(h: Harness) -> None:
    message = h.image_upload("a", b"img-a")
    _settled(h.root / "a.jpg")
    h.run(message)
    h.hashes.flushall()
    report = h.run(message)
    assert (report.skipped, report.embedded) == (1, 0)  # the vector store still knew


def test_model_calls_follow_the_calibrated_batch_size(tmp_path: Path) -> None:
    h = Harness(tmp_path, batch=8, tuner=lambda plan, stage: 3)
    h.run(*({"id": f"t{i}", "text": f"text {i}"} for i in range(7)))
    assert sorted(tally(h.text).batches) == [1, 3, 3]
    plan = h.plans.get(h.text)
    assert h.plans.batch_size(plan, plan.models[0]) == 3  # calibrated when bound
