"""A video's segments on the real stack (``STREAMER_VIDEO_SEGMENT_S``): beside the video's own
row, one row per segment with its time range, found by a photo of its scene before the whole
video; a shorter new version of the video leaves no stale segment, a backfill writes them anew
for the candidate version (never re-embedding a segment as a video of its own), and a delete
takes them all."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from operators.fetch import path_to_uri
from streamer.config.settings import VideoSettings
from streamer.core.messages import UploadMessage
from streamer.demo.samples import sample_photo
from streamer.demo.video import write_video
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient, SearchResult
from streamer.rollout.commands import Rollouts
from streamer.storage.store import PART_OF
from tests.integration.conftest import Scenario, wait_for
from topologies import DEFAULT_TOPOLOGIES

pytestmark = pytest.mark.integration

V2 = "effnet-lite0-b5-frames@2"


def test_segments_are_rows_of_their_own_kept_in_step_with_their_video(
    scenario: Scenario,
) -> None:
    media = scenario.media
    rocket = media / "rocket.jpg"
    sample_photo("rocket").save(rocket, "JPEG", quality=90)
    two = write_video(
        media / "two.mp4", [sample_photo("chelsea"), sample_photo("rocket")], seconds_each=2.0
    )
    kafka = scenario.settings.kafka
    asyncio.run(
        publish(kafka, [UploadMessage(id="two", uri=path_to_uri(two), metadata={"album": "a"})])
    )
    scenario.start_worker(STREAMER_VIDEO_SEGMENT_S="2")
    collection = scenario.collection("video")
    wait_for("the video and its two segments", lambda: scenario.count("video") == 3)

    rows = scenario.store.read_rows(collection, ["two", "two#s0", "two#s1"], with_vectors=True)
    assert PART_OF not in rows["two"].metadata
    assert rows["two#s0"].metadata == {"album": "a", "start_s": 0.0, "end_s": 2.0, PART_OF: "two"}
    assert rows["two#s1"].metadata == {"album": "a", "start_s": 2.0, "end_s": 4.0, PART_OF: "two"}
    vectors = {i: r.vector for i, r in rows.items() if r.vector is not None}
    assert all(float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-4) for v in vectors.values())
    # the video's vector lies between its scenes'
    assert float(vectors["two"] @ vectors["two#s0"]) > float(vectors["two#s0"] @ vectors["two#s1"])

    scenario.wait_searchable(collection)

    async def ask() -> tuple[SearchResult, SearchResult]:
        async with SearchClient(kafka, timeout_s=120) as client:
            every = await client.search(image_path=rocket, topology="video", top_k=3)
            within = await client.search(
                image_path=rocket, topology="video", filter={"segment_of": "two"}
            )
            return every, within

    found, within = asyncio.run(ask())
    assert found.error is None and within.error is None, (found.error, within.error)
    assert [h.id for h in found.hits] == ["two#s1", "two", "two#s0"], found.hits
    assert found.hits[0].metadata["start_s"] == 2.0  # the moment the rocket is shown
    assert [h.id for h in within.hits] == ["two#s1", "two#s0"]  # the moments of one video

    # a rollout: the candidate gets the video and its segments, each made anew from the video
    with_segments = scenario.settings.model_copy(update={"video": VideoSettings(segment_s=2.0)})
    rollouts = Rollouts(with_segments, DEFAULT_TOPOLOGIES)
    try:
        rollouts.start("video", V2)
        progress = rollouts.backfill("video", batch_size=4)
        assert (progress.embedded, progress.failed) == (1, 0), progress
        candidate = rollouts.collection(rollouts.topology("video"), V2)
        assert sorted(scenario.store.ids(candidate)) == ["two", "two#s0", "two#s1"]
        rollouts.rollback("video")
    finally:
        rollouts.close()

    # the video, cut to its first scene: its second segment goes
    write_video(two, [sample_photo("chelsea")], seconds_each=2.0)
    asyncio.run(publish(kafka, [UploadMessage(id="two", uri=path_to_uri(two))]))
    wait_for(
        "the stale segment gone",
        lambda: sorted(scenario.store.ids(collection)) == ["two", "two#s0"],
    )
    asyncio.run(publish(kafka, [UploadMessage(id="two", op="delete")]))
    wait_for("the video and its segments deleted", lambda: scenario.count("video") == 0)
