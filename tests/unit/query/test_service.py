"""The search service with in-process fakes: validation, routing, coalescing."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamer.config.settings import FetchSettings
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
