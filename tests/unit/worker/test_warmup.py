"""The warmer binds the registry's versions in the background and reports them warm."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from streamer.config.settings import FetchSettings
from streamer.rollout.presence import Presence, WorkerPresence
from streamer.rollout.registry import RolloutState
from streamer.runner.context import Context
from streamer.runner.plan import Plan, bind
from streamer.runner.plans import Plans
from streamer.runner.topology import Topology
from streamer.testing import fake_topology
from streamer.worker.warmup import Warmer

TEXT = fake_topology("text", "text")


class Registry:
    """What the warmer reads of the registry; ``down`` makes it unreadable."""

    def __init__(self, serving: str = "text@1", candidate: str | None = None) -> None:
        self.state = RolloutState("text", serving, candidate)
        self.down = False

    def read(self, topology: Topology) -> RolloutState:
        if self.down:
            raise ConnectionError("milvus unreachable")
        return self.state


class Published(Presence):
    """Presence records kept in a list."""

    def __init__(self) -> None:
        super().__init__(None, prefix="p")  # type: ignore[arg-type]
        self.records: list[WorkerPresence] = []
        self.removed: list[str] = []
        self.changed = threading.Condition()

    def publish(self, record: WorkerPresence) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def remove(self, worker: str) -> None:
        self.removed.append(worker)

    def wait_for(self, check: Callable[[WorkerPresence], bool], timeout_s: float = 30) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: any(map(check, self.records)), timeout_s):
                pytest.fail(f"no record passed the check: {self.records[-3:]}")


def plans(binder: Callable[[Topology, str, Context], Plan] = bind) -> Plans:
    return Plans(Context(FetchSettings(), device="cpu"), binder=binder)


def warmer(registry: Registry, plans: Plans, presence: Published) -> Warmer:
    return Warmer(
        "w1",
        ["search"],
        [TEXT],
        plans,
        registry,  # type: ignore[arg-type]
        presence=presence,
        heartbeat_s=0.05,
    )


def test_a_started_rollout_is_bound_and_reported_warm_without_any_call() -> None:
    registry, bound, presence = Registry(), plans(), Published()
    bound.get(TEXT)  # as load_plans does
    w = warmer(registry, bound, presence)
    w.start()
    try:
        presence.wait_for(lambda r: r.topologies == {"text": ("text@1",)})
        registry.state = RolloutState("text", "text@1", candidate="text@2")
        presence.wait_for(lambda r: r.holds("text", "text@2"))
    finally:
        w.stop()
    assert ("text", "text@2") in bound.loaded()
    assert presence.removed == ["w1"]
    after_stop = len(presence.records)
    time.sleep(0.2)  # several heartbeats: none writes the record again
    assert len(presence.records) == after_stop


def test_start_binds_the_serving_version_before_the_worker_takes_work() -> None:
    bound = plans()
    bound.get(TEXT)  # the declared version; the alias was moved to @2 by a promotion
    w = warmer(Registry(serving="text@2", candidate=None), bound, Published())
    w.start()
    w.stop()
    assert set(bound.loaded()) == {("text", "text@1"), ("text", "text@2")}


def test_a_version_that_fails_to_load_is_reported_and_not_retried_at_once() -> None:
    def binder(topology: Topology, version: str, context: Context) -> Plan:
        if version == "text@2":
            raise OSError("no weights for text@2")
        return bind(topology, version, context)

    bound = plans(binder)
    bound.get(TEXT)
    w = warmer(Registry(candidate="text@2"), bound, Published())
    queued = w.beat()
    assert queued.loading == {"text": ("text@2",)}
    assert not w.warm(TEXT, "text@2")  # as the binding thread would
    record = w.beat()
    assert record.loading == {"text": ()}  # not queued again before retry_failed_s
    assert record.failed == {"text": {"text@2": "OSError: no weights for text@2"}}
    assert record.why_not("text", "text@2") == "failed: OSError: no weights for text@2"


def test_an_unreadable_registry_still_leaves_the_worker_reported() -> None:
    registry, presence = Registry(), Published()
    bound = plans()
    bound.get(TEXT)
    w = warmer(registry, bound, presence)
    registry.down = True
    record = w.beat()
    assert presence.records == [record]
    assert record.topologies == {"text": ("text@1",)}
