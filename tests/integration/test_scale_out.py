"""Scale-out on the embedded stack: three workers in one consumer group, one leaves, one joins."""

from __future__ import annotations

import asyncio
import signal

import pytest

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.stack.processes import free_port
from tests.integration.conftest import Scenario, wait_for
from tests.unit.core.test_metrics import get

pytestmark = pytest.mark.integration

M = 400


def test_three_workers_one_stopped_one_started(scenario: Scenario) -> None:
    small = {"STREAMER_BATCH_MAX_BATCH_SIZE": "4", "STREAMER_BATCH_MAX_WAIT_MS": "5"}
    port = free_port()
    workers = {
        name: scenario.start_worker(
            STREAMER_WORKER_NAME=name,
            STREAMER_METRICS_PORT=str(port if name == "w1" else 0),
            **small,
        )
        for name in ("w1", "w2", "w3")
    }
    uploads = [UploadMessage(id=f"doc-{i}", text=f"shared work item {i}") for i in range(M)]
    # two waves: the second is published after the change of workers, so work is left for the
    # group after it however fast the first wave went (keys spread it over every partition,
    # the stopped worker's included)
    first, second = uploads[: M // 2], uploads[M // 2 :]
    asyncio.run(publish(scenario.settings.kafka, first))
    wait_for("ingest under way", lambda: scenario.count("text") >= 60, timeout_s=240)
    scenario.kill(workers["w2"], signal.SIGTERM)
    workers["w4"] = scenario.start_worker(STREAMER_WORKER_NAME="w4", **small)
    asyncio.run(publish(scenario.settings.kafka, second))
    wait_for("every item", lambda: scenario.count("text") == M, timeout_s=300)

    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == M
    assert set(ids) == {u.id for u in uploads}
    per_worker = scenario.stats.per_worker()
    upserted = {name: c.get("upserted", 0) for name, c in per_worker.items()}
    # the stopped worker did a part of the first wave at most; its partitions went to the
    # others, who did the rest, the whole second wave included
    assert upserted.get("w2", 0) <= len(first), upserted
    others = upserted.get("w1", 0) + upserted.get("w3", 0) + upserted.get("w4", 0)
    assert others >= M - upserted.get("w2", 0), upserted
    # the newcomer joined the group; on the embedded broker its first assignment can take
    # longer than the remaining work (seen in CI), so only its presence is asserted
    assert workers["w4"].poll() is None, scenario.worker_logs()
    for name in ("w1", "w3", "w4"):
        assert workers[name].poll() is None, scenario.worker_logs()

    # the first worker's endpoints: ready, alive, and counting what it did
    assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    if upserted.get("w1", 0):
        assert 'streamer_items_total{outcome="upserted"}' in body
    assert 'streamer_serving_version{topology="text",version="minilm-l6@1"} 1.0' in body
