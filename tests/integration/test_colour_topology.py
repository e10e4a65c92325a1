"""The colour topology (an operator of its own, no model) through a real worker on the embedded
stack, beside the built-in topologies: photos on the topic are indexed by every image topology,
a red photo finds the red ones, and a rollout to its second version serves the same answer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from operators import path_to_uri
from streamer.config.settings import settings_env
from streamer.core.messages import SearchResult, UploadMessage
from streamer.ingest.producer import publish
from streamer.query.client import SyncSearchClient
from streamer.rollout.commands import Rollouts
from tests.integration.conftest import Scenario, wait_for
from tests.unit.topologies.test_colour import colour_photo, write_colour_photos
from topologies import COLOUR, DEFAULT_TOPOLOGIES, IMAGE

pytestmark = pytest.mark.integration

SERVED = "topologies:DEFAULT_TOPOLOGIES,topologies:COLOUR"
V1, V2 = "hsv-8x4x4@1", "hsv-16x4x4@2"


def test_colour_search_and_rollout_beside_the_built_in_topologies(scenario: Scenario) -> None:
    photos = write_colour_photos(scenario.media / "photos")
    uploads = [
        UploadMessage(id=path.stem, uri=path_to_uri(path), metadata={"colour": colour})
        for colour, paths in photos.items()
        for path in paths
    ]
    query = scenario.media / "query-red.jpg"  # a red photo of its own, never published
    colour_photo((185, 30, 45), seed=99).save(query)
    reds = {p.stem for p in photos["red"]}
    prefix = scenario.settings.milvus.collection_prefix
    v1, v2 = COLOUR.collection_name(V1, prefix=prefix), COLOUR.collection_name(V2, prefix=prefix)

    def rows(collection: str) -> int:
        store = scenario.store
        return store.count(collection) if store.collections(collection) else 0

    asyncio.run(publish(scenario.settings.kafka, uploads))
    scenario.start_worker(STREAMER_TOPOLOGIES=SERVED)
    # one upload, every topology of its medium: the photos are in the image model's index too
    wait_for("the colour rows", lambda: rows(v1) == len(uploads))
    wait_for("the image rows", lambda: rows(IMAGE.collection_name(prefix=prefix)) == len(uploads))
    stored = scenario.store.read_rows(v1, [u.id for u in uploads], with_vectors=True)
    assert {row.vector.shape for row in stored.values() if row.vector is not None} == {(128,)}

    def search() -> SearchResult:
        with SyncSearchClient(scenario.settings.kafka, timeout_s=60) as client:
            return client.search(image_path=query, topology="colour", top_k=len(uploads))

    before = search()
    assert (before.error, before.topology, before.model_version) == (None, "colour", V1)
    assert {h.id for h in before.hits[: len(reds)]} == reds, before.hits

    topologies = (*DEFAULT_TOPOLOGIES, COLOUR)
    rollouts = Rollouts(scenario.settings, topologies)
    try:
        rollouts.start("colour", V2)
        progress = rollouts.backfill("colour", batch_size=4)
        assert progress.done == len(uploads), progress
        wait_for("the second version's rows", lambda: rows(v2) == len(uploads))
        rollouts.promote("colour")
        assert rollouts.status("colour")["serving"] == V2
    finally:
        rollouts.close()
    backfilled = scenario.store.read_rows(v2, [u.id for u in uploads], with_vectors=True)
    assert {row.vector.shape for row in backfilled.values() if row.vector is not None} == {(256,)}

    # the command line asks the same question; the second version answers it
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "search", "--topology", "colour", "--image", str(query),
         "--top-k", str(len(uploads)), "--json"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, **settings_env(scenario.settings)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = SearchResult.model_validate(json.loads(done.stdout))
    assert (after.error, after.topology, after.model_version) == (None, "colour", V2)
    assert {h.id for h in after.hits[: len(reds)]} == reds, after.hits
    assert all(h.metadata.get("colour") == "red" for h in after.hits[: len(reds)])
