"""The search service with in-process fakes: validation, routing, coalescing."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamer.config.settings import FetchSettings
from streamer.core.messages import SearchResult
from streamer.core.stats import Stats
from streamer.query.service import Answer, SearchService
from streamer.runner.context import Context
from streamer.runner.operator import Source
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.storage.store import VectorRow
from streamer.testing import InMemoryVectorStore, fake_topology, tally

POOL = ThreadPoolExecutor(2)
IMAGE = fake_topology("image", "image", dim=6, batch=64)
TEXT = fake_topology("text", "text", dim=8, batch=64)


@pytest.fixture
def service(tmp_path: Path) -> SearchService:
    store = InMemoryVectorStore()
    plans = Plans(Context(FetchSettings(media_roots=(tmp_path,), max_bytes=100), device="cpu"))
    runner = Runner(POOL, POOL, batch_size=plans.batch_size)
    for topology in (TEXT, IMAGE):
        store.ensure_collection(
            topology.collection_name(),
            plans.get(topology).dim,
            alias=topology.alias(),
            model_version=topology.model_version,
        )
    texts = ["coffee", "cats", "rockets"]
    vectors = asyncio.run(runner.run(plans.get(TEXT), [Source(text=t) for t in texts]))
    store.upsert(
        TEXT.collection_name(),
        [
            VectorRow(f"t-{t}", v, "h", TEXT.model_version, "text", text=t, metadata={"tenant": t})
            for t, v in zip(texts, vectors, strict=True)
        ],
    )
    return SearchService(
        topologies=[IMAGE, TEXT],
        plans=plans,
        runner=runner,
        store=store,
        stats=Stats(None, prefix="t"),
        default_reply_to="search.results",
        max_top_k=50,
    )


def ask(service: SearchService, *requests: Any) -> list[Answer]:
    values = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in requests]
    return asyncio.run(service.answer(values, [None] * len(values)))


def test_text_query_finds_its_text(service: SearchService) -> None:
    (answer,) = ask(service, {"request_id": "r1", "text": "cats", "top_k": 2})
    assert answer.reply_to == "search.results"
    assert answer.key() == b"r1"
    result = answer.result
    assert result.error is None
    assert result.topology == "text"
    assert result.model_version == TEXT.model_version
    assert result.hits[0].id == "t-cats"
    assert len(result.hits) == 2


def test_concurrent_requests_share_one_search(service: SearchService) -> None:
    store = service.store
    assert isinstance(store, InMemoryVectorStore)
    before = store.search_calls
    answers = ask(service, *({"request_id": f"r{i}", "text": "coffee", "top_k": 1 + i % 3}
                             for i in range(40)))  # fmt: skip
    assert [a.result.request_id for a in answers] == [f"r{i}" for i in range(40)]
    assert all(len(a.result.hits) == 1 + i % 3 for i, a in enumerate(answers))
    assert store.search_calls - before == 1
    assert tally(TEXT).batches[-1] == 40
    assert service.stats.local["search_requests"] == 40
    assert service.stats.local["search_calls"] == 1


def test_vector_query(service: SearchService) -> None:
    plan = service.plans.get(TEXT)
    (vector,) = asyncio.run(service.runner.run(plan, [Source(text="rockets")]))
    vector = vector * 3  # any length: normalized
    (answer,) = ask(service, {"request_id": "v", "vector": vector.tolist(), "topology": "text"})
    assert answer.result.hits[0].id == "t-rockets"
    assert answer.result.hits[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (b"{nope", "not UTF-8 JSON"),
        ({"request_id": "x"}, "exactly one of text, uri or vector"),
        ({"request_id": "x", "text": "a", "vector": [1.0]}, "exactly one"),
        ({"request_id": "x", "text": "a", "top_k": 51}, "over the limit of 50"),
        ({"request_id": "x", "text": "a", "top_k": 0}, "top_k"),
        ({"request_id": "x", "text": "a", "topology": "audio"}, "unknown topology"),
        ({"request_id": "x", "vector": [1.0, 0.0]}, "must name its topology"),
        ({"request_id": "x", "vector": [0.0] * 8, "topology": "text"}, "all zeros"),
        ({"request_id": "x", "vector": [1.0, 2.0], "topology": "text"}, "8 dimensions"),
        ({"request_id": "x", "text": "a", "filter": {"owner": "me"}}, "declared metadata"),
        ({"request_id": "x", "text": "a", "version": "text@9"}, "no version"),
        ({"request_id": "x", "text": "a", "reply_to": "media.uploads"}, "not allowed"),
        ({"request_id": "x", "uri": "file:///etc/passwd.jpg"}, "fetch failed"),
        ({"request_id": "x", "text": "bad: the fake decoder refuses"}, "decode failed"),
    ],
)
def test_bad_requests_get_an_answer_with_the_error(
    service: SearchService, request_: Any, reason: str
) -> None:
    answers = ask(service, request_, {"request_id": "fine", "text": "coffee"})
    assert len(answers) == 2
    bad, good = answers
    assert bad.result.error is not None and reason in bad.result.error
    assert bad.result.hits == []
    assert bad.reply_to == "search.results"  # never a topic the request chose freely
    assert good.result.error is None and good.result.hits


def test_request_id_falls_back_to_the_message_key(service: SearchService) -> None:
    (answer,) = asyncio.run(service.answer([b"garbage"], [b"key-7"]))
    assert answer.result.request_id == "key-7"
    assert answer.result.error


def test_reply_to_children_of_the_results_topic(service: SearchService) -> None:
    (answer,) = ask(service, {"request_id": "r", "text": "a", "reply_to": "search.results.app1"})
    assert answer.reply_to == "search.results.app1"
    assert not service.reply_allowed("search.resultsX")


def test_empty_topology_says_so(service: SearchService) -> None:
    (answer,) = ask(service, {"request_id": "r", "uri": "file:///x/a.jpg"})
    assert answer.result.error  # no image indexed and the file is outside the roots
    store = service.store
    assert isinstance(store, InMemoryVectorStore)
    store.aliases.pop("image")
    (answer,) = ask(
        service, {"request_id": "r", "vector": np.ones(6).tolist(), "topology": "image"}
    )
    assert answer.result.error == "topology 'image' has nothing indexed yet"


def promote_to_v2(service: SearchService) -> str:
    """A second version of the text collection, served from now on; returns its name."""
    store = service.store
    plan = service.plans.get(TEXT, "text@2")
    v2 = TEXT.collection_name("text@2")
    store.ensure_collection(v2, plan.dim, model_version="text@2")
    (vector,) = asyncio.run(service.runner.run(plan, [Source(text="cats")]))
    store.upsert(v2, [VectorRow("t2-cats", vector, "h", "text@2", "text", text="cats")])
    store.point_alias(TEXT.alias(), v2)
    return v2


def test_a_batch_looks_its_alias_up_once(
    service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.store
    lookups: list[str] = []
    real = store.alias_target

    def alias_target(alias: str) -> str | None:
        lookups.append(alias)
        return real(alias)

    monkeypatch.setattr(store, "alias_target", alias_target)
    ask(service, *({"request_id": f"r{i}", "text": "coffee"} for i in range(10)))
    assert lookups == ["text"]


def test_a_warm_batch_searches_while_it_looks_the_alias_up(service: SearchService) -> None:
    store = service.store
    assert isinstance(store, InMemoryVectorStore)
    ask(service, {"request_id": "cold", "text": "cats"})
    before = store.search_calls
    (answer,) = ask(service, {"request_id": "warm", "text": "cats"})
    assert answer.result.hits[0].id == "t-cats"
    assert store.search_calls - before == 1  # the guess was right: one search, no second


def test_after_a_promotion_answers_come_from_the_new_target(service: SearchService) -> None:
    store = service.store
    assert isinstance(store, InMemoryVectorStore)
    (before,) = ask(service, {"request_id": "v1", "text": "cats"})
    assert before.result.model_version == "text@1"
    promote_to_v2(service)
    searches = store.search_calls
    (moved, vector_query) = ask(
        service,
        {"request_id": "v2", "text": "cats"},
        {"request_id": "v", "vector": [1.0] * 10, "topology": "text"},
    )
    # searched at the old target first (the guess), then again where the alias points now,
    # with the text embedded again by the new version's model
    assert store.search_calls - searches == 2
    assert moved.result.error is None
    assert moved.result.model_version == "text@2"
    assert [h.id for h in moved.result.hits] == ["t2-cats"]
    assert vector_query.result.error is None and vector_query.result.model_version == "text@2"
    (after,) = ask(service, {"request_id": "v2-again", "text": "cats"})
    assert after.result.model_version == "text@2"


def test_an_alias_gone_since_the_last_batch_says_so(service: SearchService) -> None:
    request = {"request_id": "r", "vector": [1.0] * 8, "topology": "text"}
    (first,) = ask(service, request)
    assert first.result.error is None
    store = service.store
    assert isinstance(store, InMemoryVectorStore)
    store.aliases.pop("text")
    (gone,) = ask(service, request)
    assert gone.result.error == "topology 'text' has nothing indexed yet"
    assert gone.result.hits == []


def test_answers_carry_their_hops(service: SearchService) -> None:
    request = {"request_id": "r", "text": "cats", "sent_ms": 500.0}
    bad = {"request_id": "bad", "text": "a", "top_k": 0}
    values = [json.dumps(r).encode() for r in (request, bad)]
    good, failed = asyncio.run(service.answer(values, [None, None], received_ms=[510.0, 511.0]))
    hops = good.result.hops
    assert hops is not None
    assert hops.sent_ms == 500.0
    assert hops.received_ms == 510.0
    assert hops.search_started_ms is not None and hops.search_ended_ms is not None
    assert hops.received_ms < hops.taken_ms <= hops.search_started_ms <= hops.search_ended_ms
    assert hops.replied_ms is None  # stamped when the answer is sent:
    sent = SearchResult.model_validate_json(good.value(replied_ms=hops.search_ended_ms + 1))
    assert sent.hops is not None and sent.hops.replied_ms == hops.search_ended_ms + 1
    assert sent.hops.durations_ms(answered_ms=sent.hops.replied_ms + 2) is not None

    assert failed.result.error is not None
    assert failed.result.hops is not None and failed.result.hops.received_ms == 511.0
    assert failed.result.hops.search_started_ms is None
