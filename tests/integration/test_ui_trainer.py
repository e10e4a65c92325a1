"""The page's trainer without a browser, on the real stack (Milvus, Redis): sessions start from
a stored asset or a saved classifier, show what was not shown, and refuse what does not fit
(a label for a result not shown, a label off the scale, a session that is over, a name taken,
a classifier of another topology) with a message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from streamer.storage.store import VectorRow
from streamer.testing import fake_topology
from streamer.ui.search import PageError, PageQuery, PageSearch
from streamer.ui.trainer import PageTrainer
from tests.integration.conftest import Scenario

pytestmark = pytest.mark.integration


@pytest.fixture
def trainer(scenario: Scenario) -> Iterator[PageTrainer]:
    """30 stored unit vectors in two groups (``p*`` and ``n*``) of a topology ``clips``."""
    clips, other = fake_topology("clips", "image"), fake_topology("notes", "text")
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(2, 8))
    vectors = np.concatenate([c + 0.5 * rng.normal(size=(15, 8)) for c in centres])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"p{i}" for i in range(15)] + [f"n{i}" for i in range(15)]
    prefix = scenario.settings.milvus.collection_prefix
    collection = clips.collection_name(prefix=prefix)
    scenario.store.ensure_collection(collection, 8, alias=clips.alias(prefix=prefix),
                                     model_version="clips@1")  # fmt: skip
    scenario.store.upsert(
        collection,
        [VectorRow(i, v, "h", "clips@1", "image") for i, v in zip(ids, vectors, strict=True)],
    )
    search = PageSearch(scenario.settings, [clips, other])
    try:
        yield PageTrainer(search)
    finally:
        search.close()


def test_a_session_from_an_asset_trains_and_saves(trainer: PageTrainer) -> None:
    first = asyncio.run(trainer.start(PageQuery(topology="clips", asset_id="p0"), None))
    shown = [c["id"] for c in first["candidates"]]
    assert len(shown) == 10 and "p0" not in shown and first["round"] == 1
    session = first["session"]
    labels = {i: 1.0 if i.startswith("p") else -1.0 for i in shown}
    second = asyncio.run(trainer.train(session, labels))
    again = [c["id"] for c in second["candidates"]]
    assert not set(again) & set(shown) and second["labels"] == 10
    assert {c["why"] for c in second["candidates"]} == {"top", "boundary"}

    with pytest.raises(PageError, match="was not shown in this round"):
        asyncio.run(trainer.train(session, {shown[0]: 1.0}))
    with pytest.raises(PageError, match="from -1 to \\+1"):
        asyncio.run(trainer.train(session, {again[0]: 3.0}))
    with pytest.raises(PageError, match="session is over"):
        asyncio.run(trainer.train("no-such-session", {}))

    saved = asyncio.run(trainer.save(session, "groups", replace=False))
    assert saved == {"saved": "groups", "labels": 10}
    with pytest.raises(PageError, match="saved already"):
        asyncio.run(trainer.save(session, "groups", replace=False))
    with pytest.raises(PageError, match="classifier name"):
        asyncio.run(trainer.save(session, "Not A Name", replace=False))
    listed = asyncio.run(trainer.classifiers())
    assert [(c["name"], c["topology"], c["labels"], c["attached"]) for c in listed] == [
        ("groups", "clips", 10, False)
    ]
    assert asyncio.run(trainer.attach("groups", True)) == {"name": "groups", "attached": True}
    assert [c["attached"] for c in asyncio.run(trainer.classifiers())] == [True]
    assert trainer.saved.attached_names() == ["groups"]
    assert asyncio.run(trainer.attach("groups", False)) == {"name": "groups", "attached": False}
    assert trainer.saved.attached_names() == []
    with pytest.raises(PageError, match="no classifier named 'nope'"):
        asyncio.run(trainer.attach("nope", True))

    reset = asyncio.run(trainer.reset(session))
    assert reset["labels"] == 0 and reset["round"] == 1

    # a saved classifier goes on training; on another topology it is refused
    resumed = asyncio.run(trainer.start(PageQuery(topology="clips"), "groups"))
    assert resumed["via"] == "the classifier 'groups'" and len(resumed["candidates"]) == 10
    with pytest.raises(PageError, match="classifies 'clips', not 'notes'"):
        asyncio.run(trainer.start(PageQuery(topology="notes"), "groups"))
    stale = trainer.saved.get("groups")
    object.__setattr__(stale, "name", "stale")
    object.__setattr__(stale, "model_version", "clips@0")
    trainer.saved.save(stale)
    with pytest.raises(PageError, match="'stale' was trained on 'clips@0'; 'clips@1' serves"):
        asyncio.run(trainer.start(PageQuery(topology="clips"), "stale"))
    with pytest.raises(PageError, match="no asset 'p99'"):
        asyncio.run(trainer.start(PageQuery(topology="clips", asset_id="p99"), None))


def test_a_query_is_embedded_by_the_version_that_serves(scenario: Scenario) -> None:
    """After a rollout the alias points at another version: the page embeds with that one
    (here 10 dimensions, not the declared version's 8), and refuses, saying so, a version this
    process does not declare."""
    clips = fake_topology("clips", "image")
    prefix = scenario.settings.milvus.collection_prefix
    served = clips.collection_name("clips@2", prefix=prefix)
    scenario.store.ensure_collection(served, 10, alias=clips.alias(prefix=prefix),
                                     model_version="clips@2")  # fmt: skip
    vectors = np.eye(3, 10, dtype=np.float32)
    scenario.store.upsert(served, [VectorRow(f"a{i}", v, "h", "clips@2", "image")
                                   for i, v in enumerate(vectors)])  # fmt: skip
    search = PageSearch(scenario.settings, [clips])
    try:
        found = asyncio.run(search.search(PageQuery(topology="clips", image=b"any photo")))
        assert found["via"] == "clips (clips@2)" and len(found["hits"]) == 3
        started = asyncio.run(PageTrainer(search).start(PageQuery("clips", image=b"a photo"), None))
        assert len(started["candidates"]) == 3

        unknown = clips.collection_name("clips@9", prefix=prefix)
        scenario.store.ensure_collection(unknown, 10, model_version="clips@9")
        scenario.store.point_alias(clips.alias(prefix=prefix), unknown)
        with pytest.raises(PageError, match="served by 'clips@9'"):
            asyncio.run(search.search(PageQuery(topology="clips", image=b"any photo")))
    finally:
        search.close()
