"""The ingest consumer's fetch wait comes from the settings (faust hard-codes 1500 ms), and a
revocation waits a bounded time for the batches in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import faust
from faust.types import TP

from streamer.config.settings import load_settings
from streamer.worker.app import create_app
from streamer.worker.transport import StreamerApp
from topologies import TEXT


def fetch_wait_of(app: faust.App) -> int:
    async def build() -> int:
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    return asyncio.run(build())


def test_faust_alone_waits_one_and_a_half_seconds(tmp_path: Path) -> None:
    app = faust.App("plain", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert fetch_wait_of(app) == 1500


def test_the_worker_waits_as_configured(tmp_path: Path) -> None:
    env = {"STREAMER_STACK_STATE_DIR": str(tmp_path), "STREAMER_KAFKA_FETCH_MAX_WAIT_MS": "40"}
    app = create_app(load_settings(env), [TEXT], pipeline=None)
    assert fetch_wait_of(app) == 40
    default = create_app(load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)}), [TEXT], None)
    assert fetch_wait_of(default) == 100


# Rebalances: a revocation waits a bounded time for the batches in flight (issue 14).


@dataclass(eq=False)
class FakeMessage:
    acked: bool = False


@dataclass
class FakeConsumer:
    """What a bounded revocation uses of faust's consumer."""

    unacked: set[FakeMessage] = field(default_factory=set)
    should_stop: bool = False
    commits: int = 0

    async def commit(self) -> bool:
        self.commits += 1
        return True


def revoke_wait(app: StreamerApp, consumer: FakeConsumer) -> None:
    async def revoke() -> None:
        app._revoking = True  # as during _on_partitions_revoked
        waiting = app._consumer_wait_empty(consumer, None)  # type: ignore[arg-type]
        await asyncio.wait_for(waiting, timeout=30)

    asyncio.run(revoke())


def test_a_revocation_waits_at_most_the_rebalance_timeout_less_two_heartbeats(
    tmp_path: Path,
) -> None:
    env = {"STREAMER_STACK_STATE_DIR": str(tmp_path)}
    app = create_app(load_settings(env), [TEXT], pipeline=None)
    assert isinstance(app, StreamerApp)
    assert app.revoke_wait_s == 8.0  # rebalance timeout 10 s, heartbeats every second
    short = {**env, "STREAMER_KAFKA_REBALANCE_TIMEOUT_S": "3"}
    shorter = create_app(load_settings(short), [TEXT], pipeline=None)
    assert isinstance(shorter, StreamerApp)
    assert shorter.revoke_wait_s == 1.5  # at least half the timeout
    assert StreamerApp("pinned", revoke_wait_s=2.5, datadir=str(tmp_path)).revoke_wait_s == 2.5


def test_a_revocation_hands_over_the_batches_still_in_flight(tmp_path: Path) -> None:
    app = StreamerApp("busy", revoke_wait_s=0.2, datadir=str(tmp_path))
    stuck = FakeMessage()
    consumer = FakeConsumer(unacked={stuck, FakeMessage(acked=True)})
    revoke_wait(app, consumer)  # returns although a message is never acknowledged
    assert not stuck.acked
    assert consumer.commits >= 2  # what was acknowledged, before and after the wait


def test_a_revocation_with_nothing_in_flight_commits_and_goes_on(tmp_path: Path) -> None:
    app = StreamerApp("idle", revoke_wait_s=600, datadir=str(tmp_path))
    consumer = FakeConsumer(unacked={FakeMessage(acked=True)})
    revoke_wait(app, consumer)
    assert consumer.commits == 1


def test_a_partition_moved_away_has_no_end_offset(tmp_path: Path) -> None:
    app = StreamerApp("moved", datadir=str(tmp_path))
    consumer = app.consumer
    consumer.assignment = lambda: set()  # type: ignore[method-assign]
    assert consumer.highwater(TP("uploads", 0)) is None
