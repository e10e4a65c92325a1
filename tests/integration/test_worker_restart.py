"""A worker killed mid-stream and restarted loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio

import pytest

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_ingest_e2e import image_uploads

pytestmark = pytest.mark.integration


def test_sigkill_mid_stream_then_restart(scenario: Scenario) -> None:
    images = image_uploads(scenario, 60)
    texts = [
        UploadMessage(id=f"txt-{i}", text=f"sentence number {i} about things") for i in range(60)
    ]
    asyncio.run(publish(scenario.settings.kafka, [*images, *texts]))
    small_batches = {"STREAMER_BATCH_MAX_BATCH_SIZE": "2", "STREAMER_BATCH_MAX_WAIT_MS": "5"}
    first = scenario.start_worker(**small_batches)

    wait_for("some rows", lambda: scenario.count("image") + scenario.count("text") >= 6)
    scenario.kill(first)
    partial = scenario.count("image") + scenario.count("text")
    assert partial < 120, "the worker finished before it was killed; the test proves nothing"

    scenario.start_worker(**small_batches)
    wait_for(
        "every row",
        lambda: scenario.count("image") == 60 and scenario.count("text") == 60,
        timeout_s=240,
    )
    for topology, uploads in (("image", images), ("text", texts)):
        ids = scenario.store.ids(scenario.collection(topology))
        assert len(ids) == len(set(ids)) == 60
        assert set(ids) == {u.id for u in uploads}
    assert scenario.workers[1].poll() is None, scenario.worker_logs()
