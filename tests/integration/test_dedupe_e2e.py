"""Re-deliveries and duplicate content cost no model work; losing Redis loses nothing."""

from __future__ import annotations

import asyncio

import pytest
import redis

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from tests.integration.conftest import BOTH_MILVUS, Scenario, wait_for

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

N = 1000


def texts(prefix: str, n: int, start: int = 0) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"{prefix}-{i}", text=f"item {i} is about topic {i % 37}")
        for i in range(start, start + n)
    ]


def test_resent_and_duplicate_content_need_no_model(scenario: Scenario) -> None:
    kafka = scenario.settings.kafka
    asyncio.run(publish(kafka, texts("doc", N)))
    scenario.start_worker()
    wait_for("the first thousand", lambda: scenario.count("text") == N, timeout_s=240)
    wait_for("the counters", lambda: scenario.stats.read().get("embedded", 0) == N)

    asyncio.run(publish(kafka, texts("doc", N)))  # the same messages again
    wait_for("re-sent messages", lambda: scenario.stats.read().get("received", 0) >= 2 * N)
    assert scenario.stats.read()["embedded"] == N
    assert scenario.count("text") == N

    asyncio.run(publish(kafka, texts("copy", N)))  # new ids, content seen before
    wait_for("the copies", lambda: scenario.count("text") == 2 * N, timeout_s=240)
    counters = scenario.stats.read()
    assert counters["embedded"] == N, counters
    assert counters.get("reused", 0) >= N


def test_flushing_redis_mid_ingest_loses_and_duplicates_nothing(scenario: Scenario) -> None:
    # a Redis database of this test's own, so flushing it touches no one else's keys
    own_db = scenario.settings.redis.url.rsplit("/", 1)[0] + "/13"
    scenario.settings = scenario.settings.model_copy(
        update={"redis": scenario.settings.redis.model_copy(update={"url": own_db})}
    )
    client = redis.Redis.from_url(own_db)
    client.flushdb()
    kafka = scenario.settings.kafka
    asyncio.run(publish(kafka, texts("doc", 600)))
    scenario.start_worker(STREAMER_BATCH_MAX_BATCH_SIZE="8")
    wait_for("ingest under way", lambda: scenario.count("text") >= 50, timeout_s=240)
    client.flushdb()
    asyncio.run(publish(kafka, texts("doc", 600)))  # and re-deliveries on top
    wait_for("every asset", lambda: scenario.count("text") == 600, timeout_s=240)
    wait_for(
        "the re-deliveries",
        lambda: (
            int(client.hget(f"{scenario.settings.redis.key_prefix}:stats", "received") or 0) >= 600
        ),
    )
    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == 600
    assert set(ids) == {f"doc-{i}" for i in range(600)}
    client.flushdb()
    client.close()
