"""``promote`` waits until every live worker holds the candidate warm, or refuses naming them.

Runs against the Redis at 127.0.0.1:6379 (the registry's compare-and-set is a Lua script),
under a key prefix of its own; the vector store is the in-memory fake (``conftest.py``).
"""

from __future__ import annotations

import logging

import pytest

from streamer.rollout.commands import RolloutError, Rollouts
from streamer.rollout.presence import Readiness, presence_record
from tests.unit.rollout.conftest import TEXT, V1, V2


def live(rollouts: Rollouts, worker: str, *versions: str, topology: str = "text") -> None:
    rollouts.presence.publish(presence_record(worker, ["search"], {topology: list(versions)}))


def test_every_live_worker_warm_promotes_at_once(rollouts: Rollouts) -> None:
    live(rollouts, "w1", V1, V2)
    live(rollouts, "w2", V1, V2)
    live(rollouts, "img", "image@1", topology="image")  # serves another topology: not asked
    assert rollouts.promote("text", wait_s=0).serving == V2


def test_a_worker_without_the_candidate_stops_the_promotion_and_is_named(
    rollouts: Rollouts,
) -> None:
    live(rollouts, "w1", V1, V2)
    rollouts.presence.publish(
        presence_record("w2", ["search"], {"text": [V1]}, loading={"text": [V2]})
    )
    with pytest.raises(
        RolloutError, match=r"1 of 2 live workers hold text@2 warm; not ready: w2 \(loading\)"
    ):
        rollouts.promote("text", wait_s=0)
    state = rollouts.registry.read(TEXT)
    assert (state.serving, state.candidate) == (V1, V2)  # nothing switched


def test_force_promotes_without_waiting_for_the_workers(
    rollouts: Rollouts, caplog: pytest.LogCaptureFixture
) -> None:
    live(rollouts, "w1", V1)
    looks: list[Readiness] = []
    with caplog.at_level(logging.WARNING):
        state = rollouts.promote("text", force=True, wait_s=3600, progress=looks.append)
    assert state.serving == V2
    assert len(looks) == 1  # one look, no wait
    assert "promoting before every live worker holds the candidate warm" in caplog.text


def test_promote_waits_for_a_worker_that_warms_meanwhile(rollouts: Rollouts) -> None:
    live(rollouts, "w1", V1)
    looks: list[Readiness] = []

    def look(readiness: Readiness) -> None:
        looks.append(readiness)
        live(rollouts, "w1", V1, V2)  # the worker's warmer finishes while promote waits

    assert rollouts.promote("text", wait_s=60, progress=look).serving == V2
    assert [r.done for r in looks] == [False, True]


def test_no_live_worker_promotes_with_a_warning(
    rollouts: Rollouts, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert rollouts.promote("text", wait_s=60).serving == V2
    assert "no live worker reports its models" in caplog.text


def test_a_rollback_while_waiting_is_not_overridden(rollouts: Rollouts) -> None:
    live(rollouts, "w1", V1)

    def look(readiness: Readiness) -> None:
        if not readiness.done:
            rollouts.rollback("text")  # someone abandons the rollout meanwhile
            live(rollouts, "w1", V1, V2)

    with pytest.raises(RolloutError, match="changed while waiting"):
        rollouts.promote("text", wait_s=60, progress=look)
    assert rollouts.registry.read(TEXT).serving == V1


def test_status_lists_the_live_workers_and_their_warm_versions(rollouts: Rollouts) -> None:
    rollouts.presence.publish(
        presence_record("w1", ["ingest", "search"], {"text": [V1]}, loading={"text": [V2]})
    )
    live(rollouts, "img", "image@1", topology="image")
    [worker] = rollouts.status("text")["workers"]
    assert worker["worker"] == "w1"
    assert worker["agents"] == ["ingest", "search"]
    assert (worker["warm"], worker["loading"], worker["failed"]) == ([V1], [V2], {})
