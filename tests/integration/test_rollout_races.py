"""Rollout commands racing a worker's batch, on the real Redis and milvus-lite.

Each test puts one party's step exactly between two steps of the other: a hook on a real
:class:`VectorStore` (or on the worker's view of the registry) runs the other party's command
there. The worker is the ingest pipeline a worker process assembles (``build_pipeline``), run
in this process so that its steps can be interleaved; the models are the in-process fakes.

The topology's candidate sorts before its serving version (``text_3`` < ``text_cls_2``), as a
second rollout's does after a first promotion (``minilm-l6@3`` after ``minilm-l6-cls@2``): a
worker that deletes in the listing's order meets the candidate first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from operators.fetch import Fetch
from operators.normalize import Normalize
from streamer.core.messages import UploadMessage
from streamer.ingest.pipeline import IngestReport, Record
from streamer.rollout.commands import Rollouts
from streamer.runner.context import Context
from streamer.runner.operator import BatchPolicy
from streamer.runner.plans import Plans
from streamer.runner.topology import ModelVersion, Topology
from streamer.storage.store import VectorStore
from streamer.testing import FakeDecode, FakeEmbed
from streamer.worker.assembly import build_pipeline, model_threads
from tests.integration.conftest import Scenario

pytestmark = pytest.mark.integration

SERVING = "text-cls@2"
CANDIDATE = "text@3"


def topology() -> Topology:
    policy = BatchPolicy(4, 10)
    return Topology(
        name="text",
        media_type="text",
        stages=(Fetch(), FakeDecode(), FakeEmbed(8, batch=policy), Normalize()),
        model_version=SERVING,
        alternatives=(ModelVersion(CANDIDATE, {"embed": FakeEmbed(10, batch=policy)}),),
    )


def texts(start: int, n: int) -> list[UploadMessage]:
    return [UploadMessage(id=f"doc-{i}", text=f"note {i}") for i in range(start, start + n)]


def ids(start: int, n: int) -> set[str]:
    return {m.id for m in texts(start, n)}


class Race:
    """A worker's ingest pipeline and the rollout commands, side by side."""

    def __init__(self, scenario: Scenario) -> None:
        settings = scenario.settings
        self.topology = topology()
        self.prefix = settings.milvus.collection_prefix
        self.plans = Plans(Context(settings.fetch, device="cpu"))
        self.rollouts = Rollouts(settings, [self.topology], self.plans)
        self.client = redis.Redis.from_url(settings.redis.url)
        self.threads = model_threads(settings)
        self.worker = build_pipeline(
            settings, [self.topology], self.plans, self.client, threads=self.threads
        )
        self.store = scenario.store  # an onlooker's
        self.offset = 0

    def close(self) -> None:
        self.worker.runner.close()
        self.worker.store.close()
        self.threads.close()
        self.rollouts.close()
        self.client.close()

    def collection(self, version: str) -> str:
        return self.topology.collection_name(version, prefix=self.prefix)

    def exists(self, version: str) -> bool:
        return self.collection(version) in self.store.collections(self.prefix)

    def ids(self, version: str) -> set[str]:
        return set(self.store.ids(self.collection(version)))

    def send(self, messages: Sequence[UploadMessage]) -> IngestReport:
        """One batch through the worker's pipeline."""
        records = []
        for message in messages:
            self.offset += 1
            records.append(
                Record(message.to_bytes(), message.id.encode(), "media.uploads", 0, self.offset)
            )
        return asyncio.run(self.worker.process(records))

    def delete(self, *asset_ids: str) -> IngestReport:
        return self.send([UploadMessage(id=i, op="delete") for i in asset_ids])


@pytest.fixture
def race(scenario: Scenario) -> Iterator[Race]:
    race = Race(scenario)
    try:
        yield race
    finally:
        race.close()


def hook(
    monkeypatch: pytest.MonkeyPatch,
    store: VectorStore,
    method: str,
    collection: str | None,
    action: Callable[[], object],
    *,
    after: bool = False,
) -> list[bool]:
    """Run ``action`` once, just before (or just after) the first call of ``store.<method>`` on
    ``collection`` (on any, if None); returns a list that holds True once it ran."""
    real = getattr(store, method)
    ran: list[bool] = []

    def hooked(name: str, *args: Any, **kwargs: Any) -> Any:
        mine = not ran and collection in (None, name)
        if mine and not after:
            ran.append(True)
            action()
        result = real(name, *args, **kwargs)
        if mine and after:
            ran.append(True)
            action()
        return result

    monkeypatch.setattr(store, method, hooked)
    return ran


def rolled_out(race: Race, *, warm: bool) -> None:
    """Four assets serving, the candidate started; ``warm``: the worker wrote to it since."""
    race.send(texts(0, 4))
    race.rollouts.start("text", CANDIDATE)
    if warm:
        race.send(texts(4, 4))
        assert race.ids(CANDIDATE) == ids(4, 4)


# retire


def test_a_view_from_before_the_retire_does_not_create_the_collection_again(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    rolled_out(race, warm=False)
    read = race.worker.versions
    views: list[list[str]] = []

    def read_then_retire(topology: Topology) -> list[str]:
        view = list(read(topology))
        if not views:
            race.rollouts.retire("text", CANDIDATE)  # between the read and the writes
        views.append(view)
        return view

    monkeypatch.setattr(race.worker, "versions", read_then_retire)
    report = race.send(texts(10, 3))
    assert views[0] == [SERVING, CANDIDATE]
    assert not race.exists(CANDIDATE)
    assert report.dead_letters == []
    assert report.upserted == 3
    assert race.ids(SERVING) == ids(0, 4) | ids(10, 3)


@pytest.mark.parametrize(
    ("step", "warm"),
    [
        # the worker creates the collection the retire has just dropped
        ("ensure_collection", False),
        # the worker knows the collection: its change detection looks into it, dropped
        ("read_rows", True),
        # the worker knows the collection: its upsert goes to it, dropped
        ("upsert", True),
    ],
)
def test_a_retire_between_two_steps_of_a_batch_leaves_the_version_retired(
    race: Race, monkeypatch: pytest.MonkeyPatch, step: str, warm: bool
) -> None:
    rolled_out(race, warm=warm)
    retire = lambda: race.rollouts.retire("text", CANDIDATE)  # noqa: E731
    ran = hook(monkeypatch, race.worker.store, step, race.collection(CANDIDATE), retire)
    report = race.send(texts(10, 3))
    assert ran, f"the worker never called {step} on the candidate"
    assert not race.exists(CANDIDATE)
    assert report.dead_letters == []
    assert report.upserted == 3
    assert ids(10, 3) <= race.ids(SERVING)
    # and later batches leave it alone too
    race.send(texts(20, 2))
    assert not race.exists(CANDIDATE)


def test_a_retire_between_a_workers_listing_and_its_delete(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    rolled_out(race, warm=True)
    retire = lambda: race.rollouts.retire("text", CANDIDATE)  # noqa: E731
    ran = hook(monkeypatch, race.worker.store, "delete", race.collection(CANDIDATE), retire)
    report = race.delete("doc-1", "doc-5")
    assert ran
    assert report.deleted == 2 and report.dead_letters == []
    assert not race.exists(CANDIDATE)
    assert race.ids(SERVING) == ids(0, 8) - {"doc-1", "doc-5"}


def test_starting_a_retired_version_again_lifts_its_tombstone(
    race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    rolled_out(race, warm=True)
    retire = lambda: race.rollouts.retire("text", CANDIDATE)  # noqa: E731
    hook(monkeypatch, race.worker.store, "upsert", race.collection(CANDIDATE), retire)
    race.send(texts(10, 2))  # the worker meets the tombstone
    assert not race.exists(CANDIDATE)
    race.rollouts.start("text", CANDIDATE)
    report = race.send(texts(20, 2))
    assert report.dead_letters == []
    assert race.ids(CANDIDATE) == ids(20, 2)
    race.rollouts.backfill("text")
    assert race.ids(CANDIDATE) == race.ids(SERVING)


# a delete during a backfill


@pytest.mark.parametrize("view", ["current", "from before the start"])
def test_a_delete_around_a_whole_backfill_leaves_nothing_in_the_candidate(
    race: Race, monkeypatch: pytest.MonkeyPatch, view: str
) -> None:
    race.send(texts(0, 6))
    race.rollouts.start("text", CANDIDATE)
    if view != "current":  # a worker that last read the registry before `rollout start`
        monkeypatch.setattr(race.worker, "versions", lambda topology: [SERVING])
    # the backfill runs between the worker's delete from one collection and from the other
    backfill = lambda: race.rollouts.backfill("text")  # noqa: E731
    ran = hook(monkeypatch, race.worker.store, "delete", None, backfill, after=True)
    race.delete("doc-0")
    assert ran
    assert race.ids(SERVING) == ids(1, 5)
    assert race.ids(CANDIDATE) == ids(1, 5)


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_a_delete_next_to_the_backfills_write_leaves_nothing_behind(
    race: Race, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    """The worker deletes just before or just after the backfill writes the asset to the
    candidate (after the backfill read it from the serving version, before it looks again)."""
    race.send(texts(0, 6))
    race.rollouts.start("text", CANDIDATE)
    delete = lambda: race.delete("doc-0")  # noqa: E731
    candidate = race.collection(CANDIDATE)
    ran = hook(monkeypatch, race.rollouts.store, "upsert", candidate, delete, after=after)
    race.rollouts.backfill("text")
    assert ran
    assert race.ids(SERVING) == race.ids(CANDIDATE) == ids(1, 5)
    # uploaded again, unchanged: it is written to both again (nothing remembers it as stored)
    report = race.send(texts(0, 1))
    assert report.dead_letters == []
    assert race.ids(SERVING) == race.ids(CANDIDATE) == ids(0, 6)
