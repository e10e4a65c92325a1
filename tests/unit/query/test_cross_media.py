"""A query of one medium searching another's topology: embedded by a topology of its own medium
whose version shares the searched version's space, or refused saying why."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from streamer.config.settings import FetchSettings
from streamer.core.stats import Stats
from streamer.query.service import SearchService
from streamer.runner.context import Context
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.storage.store import VectorRow
from streamer.testing import InMemoryVectorStore, fake_topology, tally

POOL = ThreadPoolExecutor(2)
PHOTOS = replace(fake_topology("photos", "image", dim=6), space="shared")
CLIPS = replace(fake_topology("clips", "video", dim=6), space="shared")
TEXT = fake_topology("words", "text", dim=6)  # the same length, another space


@pytest.fixture
def service(tmp_path: Path) -> SearchService:
    (tmp_path / "query.jpg").write_bytes(b"scene one")
    (tmp_path / "query.mp4").write_bytes(b"scene one")
    store = InMemoryVectorStore()
    plans = Plans(Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"))
    runner = Runner(POOL, POOL, batch_size=plans.batch_size)
    for topology in (PHOTOS, CLIPS, TEXT):
        plan = plans.get(topology)
        store.ensure_collection(
            topology.collection_name(), plan.dim, alias=topology.alias(),
            model_version=topology.model_version,
        )  # fmt: skip
        contents = [b"scene one", b"scene two", b"scene three"]
        vectors = asyncio.run(runner.run(plan, contents, first=1))
        store.upsert(
            topology.collection_name(),
            [
                VectorRow(f"{topology.name}-{c.decode()}", v, "h", topology.model_version, "x")
                for c, v in zip(contents, vectors, strict=True)
            ],
        )
    return SearchService(
        topologies=[PHOTOS, CLIPS, TEXT], plans=plans, runner=runner, store=store,
        stats=Stats(None, prefix="t"), default_reply_to="search.results",
    )  # fmt: skip


def ask(service: SearchService, request: dict[str, object]) -> object:
    (answer,) = asyncio.run(service.answer([json.dumps(request).encode()], [None]))
    return answer.result


def test_a_photo_searches_videos_embedded_by_the_photo_topology(
    service: SearchService, tmp_path: Path
) -> None:
    photo = (tmp_path / "query.jpg").as_uri()
    before_photos, before_clips = tally(PHOTOS).calls, tally(CLIPS).calls
    result = ask(service, {"request_id": "p", "uri": photo, "topology": "clips", "top_k": 1})
    assert result.error is None, result.error  # type: ignore[attr-defined]
    assert result.topology == "clips"  # type: ignore[attr-defined]
    assert [h.id for h in result.hits] == ["clips-scene one"]  # type: ignore[attr-defined]
    assert tally(PHOTOS).calls == before_photos + 1 and tally(CLIPS).calls == before_clips


def test_a_video_searches_photos(service: SearchService, tmp_path: Path) -> None:
    clip = (tmp_path / "query.mp4").as_uri()
    result = ask(service, {"request_id": "v", "uri": clip, "topology": "photos", "top_k": 1})
    assert [h.id for h in result.hits] == ["photos-scene one"]  # type: ignore[attr-defined]
    # no topology named: the video topology answers
    own = ask(service, {"request_id": "w", "uri": clip, "top_k": 1})
    assert own.topology == "clips"  # type: ignore[attr-defined]


def test_a_medium_with_no_topology_in_the_space_is_refused(service: SearchService) -> None:
    result = ask(service, {"request_id": "t", "text": "scene one", "topology": "photos"})
    assert result.hits == []  # type: ignore[attr-defined]
    assert "a text query cannot search 'photos'" in result.error  # type: ignore[attr-defined]
    assert "shared" in result.error  # type: ignore[attr-defined]


def test_a_rolled_out_version_keeps_its_own_space() -> None:
    assert PHOTOS.space_of() == "shared"
    assert PHOTOS.space_of("photos@2") is None  # undeclared: its own space only
