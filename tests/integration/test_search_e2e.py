"""Searches through the real query topics, answered by a real worker from real Milvus."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer

from operators.fetch import path_to_uri
from streamer.config.settings import MilvusSettings, Settings, settings_env
from streamer.core.messages import SearchResult, UploadMessage
from streamer.demo.samples import TEXT_PAIRS, write_photos
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient, SyncSearchClient
from tests.integration.conftest import BOTH_MILVUS, Scenario, wait_for

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins", "moon")
HOSTILE = [
    'acme" or metadata["tenant"] == "other',
    "acme' or '1'='1",
    'acme") or (true',
    "acme] or [1",
    '\\" or true or \\"',
    "acme\\",
    'x" || metadata["tenant"] != "',
]


@pytest.fixture(scope="module")
def indexed(
    stack: Settings, milvus_backend: MilvusSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("search")
    (root / "media").mkdir()
    (root / "logs").mkdir()
    scenario = Scenario(stack, root / "media", root / "logs", milvus_backend)
    photos = write_photos(scenario.media)
    uploads = [
        UploadMessage(
            id=f"photo-{name}",
            uri=path_to_uri(photos[name]),
            metadata={"tenant": "acme" if i % 2 == 0 else "other"},
        )
        for i, name in enumerate(PHOTOS)
    ]
    uploads += [
        UploadMessage(
            id=f"text-{i:02d}", text=sentence, metadata={"tenant": "acme" if i % 2 else "other"}
        )
        for i, (sentence, _) in enumerate(TEXT_PAIRS)
    ]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    scenario.start_worker()
    wait_for(
        "the sample set",
        lambda: (
            scenario.count("image") == len(PHOTOS) and scenario.count("text") == len(TEXT_PAIRS)
        ),
    )
    scenario.wait_searchable(scenario.collection("image"))
    scenario.wait_searchable(scenario.collection("text"))
    try:
        yield scenario
    finally:
        scenario.close()


def search_all(scenario: Scenario, requests: list[dict[str, object]]) -> list[SearchResult]:
    async def run() -> list[SearchResult]:
        async with SearchClient(scenario.settings.kafka, timeout_s=60) as client:
            return await asyncio.gather(*(client.search(**r) for r in requests))  # type: ignore[arg-type]

    return asyncio.run(run())


def test_a_paraphrase_finds_its_sentence_first(indexed: Scenario) -> None:
    results = search_all(indexed, [{"text": query} for _, query in TEXT_PAIRS[:12]])
    for i, result in enumerate(results):
        assert result.error is None, result.error
        assert result.topology == "text" and result.model_version == "minilm-l6@1"
        assert result.hits[0].id == f"text-{i:02d}", (TEXT_PAIRS[i], result.hits[:3])


def test_an_indexed_photo_finds_itself_first(indexed: Scenario) -> None:
    requests = [{"uri": path_to_uri(indexed.media / f"{n}.jpg")} for n in PHOTOS]
    for name, result in zip(PHOTOS, search_all(indexed, requests), strict=True):
        assert result.error is None, result.error
        assert result.hits[0].id == f"photo-{name}"
        assert result.hits[0].score > 0.99


def test_a_tenant_filter_returns_only_that_tenant(indexed: Scenario) -> None:
    (result,) = search_all(indexed, [{"text": "coffee", "top_k": 50, "filter": {"tenant": "acme"}}])
    assert result.error is None
    assert len(result.hits) == len(TEXT_PAIRS) // 2
    assert {h.metadata["tenant"] for h in result.hits} == {"acme"}
    (both,) = search_all(indexed, [{"text": "coffee", "top_k": 50,
                                    "filter": {"tenant": ["acme", "other"]}}])  # fmt: skip
    assert len(both.hits) == len(TEXT_PAIRS)


def test_hostile_filter_values_return_nothing_from_other_tenants(indexed: Scenario) -> None:
    requests = [{"text": "coffee", "top_k": 50, "filter": {"tenant": v}} for v in HOSTILE]
    requests += [{"uri": path_to_uri(indexed.media / "coffee.jpg"), "filter": {"tenant": v}}
                 for v in HOSTILE]  # fmt: skip
    for value, result in zip(HOSTILE * 2, search_all(indexed, requests), strict=True):
        assert result.error is None, (value, result.error)
        assert result.hits == [], (value, result.hits)
    (unknown,) = search_all(indexed, [{"text": "x", "filter": {"tenant) or (true": "a"}}])
    assert unknown.error and "declared metadata fields" in unknown.error


def test_a_hundred_concurrent_requests_each_answered_once_with_fewer_searches(
    indexed: Scenario,
) -> None:
    before = indexed.stats.read().get("search_calls", 0)
    queries = [query for _, query in TEXT_PAIRS]
    requests = [{"text": queries[i % len(queries)], "top_k": 3} for i in range(100)]
    results = search_all(indexed, requests)
    assert all(r.error is None and len(r.hits) == 3 for r in results)
    ids = [r.request_id for r in results]
    assert len(set(ids)) == 100
    searches = indexed.stats.read().get("search_calls", 0) - before
    assert 0 < searches < 100, searches

    answers = asyncio.run(_answers_on_topic(indexed.settings, set(ids)))
    assert set(answers) == set(ids)
    assert set(answers.values()) == {1}, "an answer came twice"


async def _answers_on_topic(settings: Settings, wanted: set[str]) -> Counter[str]:
    consumer = AIOKafkaConsumer(
        settings.kafka.search_results_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        idle = 0
        while idle < 4:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for messages in batch.values():
                for message in messages:
                    request_id = SearchResult.model_validate_json(message.value).request_id
                    if request_id in wanted:
                        seen[request_id] += 1
    finally:
        await consumer.stop()
    return seen


def test_sync_client_and_a_bad_request(indexed: Scenario) -> None:
    with SyncSearchClient(indexed.settings.kafka, timeout_s=60) as client:
        good = client.search("a spacecraft launching in the morning", top_k=1)
        bad = client.search("x", topology="audio")
    assert good.hits[0].id == "text-02"
    assert bad.error and "unknown topology" in bad.error


def test_cli_search_and_its_timeout(indexed: Scenario) -> None:
    env = {**os.environ, **settings_env(indexed.settings)}
    command = [sys.executable, "-m", "streamer", "search"]
    done = subprocess.run([*command, "someone making a latte", "--top-k", "2"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "text-00" in done.stdout
    silent = indexed.settings.kafka.model_copy(update={"search_requests_topic": "nobody.listens"})
    lonely = {**env, "STREAMER_KAFKA_SEARCH_REQUESTS_TOPIC": silent.search_requests_topic}
    waited = subprocess.run([*command, "hello", "--timeout", "2"],
                            env=lonely, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert waited.returncode != 0
    assert "no answer" in waited.stderr and "is a worker running" in waited.stderr
