"""The ``clip`` topologies on the real stack, with a tiny randomly initialised CLIP the test
saves (``STREAMER_CLIP_MODEL_DIR``): a worker indexes photos into ``clip`` and texts into
``clip_text`` with one model, and the search topic answers a text query on the photos and a
photo query on the texts, each embedded by the other medium's topology of the same space. The
model's vectors mean nothing: the test checks the path and the arithmetic (each hit's score is
the cosine of the stored vectors), never which photo a text should find."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from operators.fetch import path_to_uri
from streamer.core.messages import UploadMessage
from streamer.demo.samples import sample_photo
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient, SearchResult
from tests.integration.conftest import Scenario, wait_for
from tests.models.tiny_clip import PROJECTION_DIM, write_tiny_clip
from topologies import CLIP, CLIP_TEXT

pytestmark = pytest.mark.integration

PHOTOS = ("chelsea", "rocket", "coffee")
TEXTS = {"t-cat": "a cat asleep on a sofa", "t-launch": "the rocket launch at dawn"}


def test_one_space_for_photos_and_texts(scenario: Scenario, tmp_path: Path) -> None:
    model = write_tiny_clip(tmp_path / "clip")
    media, kafka = scenario.media, scenario.settings.kafka
    uploads = []
    for name in PHOTOS:
        sample_photo(name).save(media / f"{name}.jpg", "JPEG", quality=90)
        uploads.append(UploadMessage(id=name, uri=path_to_uri(media / f"{name}.jpg")))
    uploads += [UploadMessage(id=i, text=t) for i, t in TEXTS.items()]
    asyncio.run(publish(kafka, uploads))
    scenario.start_worker(
        STREAMER_TOPOLOGIES="topologies:CLIP_TOPOLOGIES", STREAMER_CLIP_MODEL_DIR=str(model)
    )
    prefix = scenario.settings.milvus.collection_prefix
    photos, texts = CLIP.collection_name(prefix=prefix), CLIP_TEXT.collection_name(prefix=prefix)

    def stored(collection: str) -> int:
        return scenario.store.count(collection) if scenario.store.collections(collection) else 0

    wait_for("photos and texts", lambda: (stored(photos), stored(texts)) == (3, 2))
    photo_rows = scenario.store.read_rows(photos, list(PHOTOS), with_vectors=True)
    text_rows = scenario.store.read_rows(texts, list(TEXTS), with_vectors=True)
    vectors = {i: np.asarray(r.vector) for i, r in {**photo_rows, **text_rows}.items()}
    assert {v.shape for v in vectors.values()} == {(PROJECTION_DIM,)}
    assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vectors.values())
    scenario.wait_searchable(photos)
    scenario.wait_searchable(texts)

    async def ask() -> tuple[SearchResult, SearchResult]:
        async with SearchClient(kafka, timeout_s=120) as client:
            by_text = await client.search(TEXTS["t-cat"], topology="clip")
            by_photo = await client.search(image_path=media / "rocket.jpg", topology="clip_text")
            return by_text, by_photo

    by_text, by_photo = asyncio.run(ask())
    assert by_text.error is None and by_photo.error is None, (by_text.error, by_photo.error)
    # a text on the photos: embedded by clip_text (as the stored text was), scored as cosines
    assert sorted(h.id for h in by_text.hits) == sorted(PHOTOS)
    for hit in by_text.hits:
        assert hit.score == pytest.approx(float(vectors["t-cat"] @ vectors[hit.id]), abs=1e-3)
    # a photo on the texts: embedded by clip, as the stored photo was
    assert sorted(h.id for h in by_photo.hits) == sorted(TEXTS)
    for hit in by_photo.hits:
        assert hit.score == pytest.approx(float(vectors["rocket"] @ vectors[hit.id]), abs=1e-3)
    assert scenario.workers[0].poll() is None, scenario.worker_logs()
