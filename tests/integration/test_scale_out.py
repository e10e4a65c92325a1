"""Scale-out on the embedded stack: three workers in one consumer group, one leaves, one joins."""

from __future__ import annotations

import asyncio
import signal

import pytest

from streamer.messages import UploadMessage
from streamer.producer import publish
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration

M = 400


def test_three_workers_one_stopped_one_started(scenario: Scenario) -> None:
    small = {"STREAMER_BATCH_MAX_BATCH_SIZE": "4", "STREAMER_BATCH_MAX_WAIT_MS": "5"}
    workers = {
        name: scenario.start_worker(STREAMER_WORKER_NAME=name, **small)
        for name in ("w1", "w2", "w3")
    }
    uploads = [UploadMessage(id=f"doc-{i}", text=f"shared work item {i}") for i in range(M)]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    wait_for("ingest under way", lambda: scenario.count("text") >= 60, timeout_s=240)
    scenario.kill(workers["w2"], signal.SIGTERM)
    before_join = scenario.count("text")
    workers["w4"] = scenario.start_worker(STREAMER_WORKER_NAME="w4", **small)
    wait_for("every item", lambda: scenario.count("text") == M, timeout_s=300)

    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == M
    assert set(ids) == {u.id for u in uploads}
    per_worker = scenario.stats.per_worker()
    upserted = {name: c.get("upserted", 0) for name, c in per_worker.items()}
    assert before_join < M, "all was done before the new worker joined; nothing proven"
    assert upserted.get("w4", 0) > 0, f"the new worker got no partitions: {upserted}"
    assert sum(1 for name in ("w1", "w3") if upserted.get(name, 0) > 0) >= 1, upserted
    for name in ("w1", "w3", "w4"):
        assert workers[name].poll() is None, scenario.worker_logs()
