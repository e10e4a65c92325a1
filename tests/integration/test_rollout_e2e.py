"""Rollouts on the real stack: shadow writes, a resumable backfill, an atomic promotion."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import pytest

from streamer.config.settings import settings_env
from streamer.core.errors import ConfigError
from streamer.core.messages import SearchResult, UploadMessage
from streamer.core.stats import Stats
from streamer.ingest.producer import publish
from streamer.query.client import SyncSearchClient
from streamer.rollout.commands import RolloutError, Rollouts
from tests.integration.conftest import BOTH_MILVUS, Scenario, wait_for
from topologies import DEFAULT_TOPOLOGIES, TEXT

# The killed-backfill test runs on milvus-lite only: on the server its hundreds of Strong
# lookups (a time tick each) double its time, and the promotion test covers the backfill there.
pytestmark = pytest.mark.integration

V2 = "minilm-l6-cls@2"


def texts(start: int, n: int) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"doc-{i}", text=f"note {i}: the weather in city {i % 13} is mild")
        for i in range(start, start + n)
    ]


@BOTH_MILVUS
def test_rollout_while_ingest_continues_then_promote(scenario: Scenario) -> None:
    kafka = scenario.settings.kafka
    asyncio.run(publish(kafka, texts(0, 60)))
    scenario.start_worker()
    wait_for("the first version", lambda: scenario.count("text") == 60)
    rollouts = Rollouts(scenario.settings, DEFAULT_TOPOLOGIES)
    rollouts.start("text", V2)

    feeder = threading.Thread(  # ingest goes on during the backfill
        target=lambda: [asyncio.run(publish(kafka, texts(60 + 10 * k, 10))) for k in range(4)]
    )
    feeder.start()
    rollouts.backfill("text", batch_size=16)
    feeder.join()
    wait_for("the later uploads", lambda: scenario.count("text") == 100)
    v2 = TEXT.collection_name(V2, prefix=scenario.settings.milvus.collection_prefix)
    wait_for("their shadow writes", lambda: scenario.store.count(v2) == 100)
    # a server's searches trail its writes by seconds: promote waits for them, so every search
    # after the switch has its five hits (asserted below)

    results: list[SearchResult] = []
    stop = threading.Event()

    def search_during_the_switch() -> None:
        with SyncSearchClient(kafka, timeout_s=60) as client:
            while not stop.is_set():
                results.append(client.search("weather in a city", top_k=5))

    searcher = threading.Thread(target=search_during_the_switch)
    searcher.start()
    wait_for("searches before the switch", lambda: len(results) >= 3)
    rollouts.promote("text")
    before = len(results)
    wait_for("searches after the switch", lambda: len(results) >= before + 5)
    stop.set()
    searcher.join()

    assert all(r.error is None and len(r.hits) == 5 for r in results)
    versions = [r.model_version for r in results]
    assert versions[0] == "minilm-l6@1" and versions[-1] == V2
    switched = versions.index(V2)
    assert set(versions[switched:]) == {V2}, "a search went back to the old version"
    v1 = TEXT.collection_name(prefix=scenario.settings.milvus.collection_prefix)
    old_ids, new_ids = scenario.store.ids(v1), scenario.store.ids(v2)
    assert len(new_ids) == len(set(new_ids)) == len(old_ids) == 100
    assert set(new_ids) == set(old_ids)

    # after the promotion, writes still reach both versions: a rollback would lose nothing
    asyncio.run(publish(kafka, texts(100, 5)))
    wait_for("writes to both", lambda: scenario.store.count(v2) == scenario.store.count(v1) == 105)
    assert rollouts.status("text")["serving"] == V2
    rollouts.rollback("text")
    assert rollouts.status("text")["serving"] == "minilm-l6@1"
    rollouts.close()


def test_a_killed_backfill_resumes_from_its_checkpoint(scenario: Scenario) -> None:
    kafka = scenario.settings.kafka
    total, batch = 240, 4
    asyncio.run(publish(kafka, texts(0, total)))
    scenario.start_worker()
    wait_for("the first version", lambda: scenario.count("text") == total, timeout_s=240)
    scenario.kill(scenario.workers[0], signal.SIGTERM)  # the backfill alone does the work
    rollouts = Rollouts(scenario.settings, DEFAULT_TOPOLOGIES)
    rollouts.start("text", V2)
    stats = Stats(scenario.redis, prefix=f"{scenario.settings.redis.key_prefix}:backfill")
    env = {**os.environ, **settings_env(scenario.settings)}
    command = [
        sys.executable,
        "-m",
        "streamer",
        "rollout",
        "backfill",
        "text",
        "--batch",
        str(batch),
    ]

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # fmt: skip
    started = lambda: rollouts.registry.checkpoint(TEXT, V2) >= 5 * batch  # noqa: E731
    wait_for("a started backfill", started, timeout_s=120)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_at_kill = rollouts.registry.checkpoint(TEXT, V2)
    embedded_at_kill = stats.read().get("embedded", 0)
    assert done_at_kill < total, "the backfill finished before it was killed; nothing proven"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    embedded_after = stats.read().get("embedded", 0) - embedded_at_kill
    assert embedded_after <= (total - done_at_kill) + batch, (embedded_after, done_at_kill)
    assert rollouts.registry.checkpoint(TEXT, V2) == total
    v2 = TEXT.collection_name(V2, prefix=scenario.settings.milvus.collection_prefix)
    ids = scenario.store.ids(v2)
    assert len(ids) == len(set(ids)) == total
    rollouts.close()


@BOTH_MILVUS
def test_promotion_refuses_an_incomplete_candidate(scenario: Scenario) -> None:
    asyncio.run(publish(scenario.settings.kafka, texts(0, 10)))
    scenario.start_worker()
    wait_for("the first version", lambda: scenario.count("text") == 10)
    rollouts = Rollouts(scenario.settings, DEFAULT_TOPOLOGIES)
    rollouts.start("text", V2)
    with pytest.raises(RolloutError, match="lacks 10 of 10 assets"):
        rollouts.promote("text")
    with pytest.raises(ConfigError, match="declares no model version 'x@9'"):
        rollouts.start("text", "x@9")
    with pytest.raises(RolloutError, match="already serves"):
        rollouts.start("text", "minilm-l6@1")
    rollouts.rollback("text")  # abandon it
    assert rollouts.status("text")["candidate"] is None
    with pytest.raises(RolloutError, match="nothing to roll back"):
        rollouts.rollback("text")
    rollouts.close()
