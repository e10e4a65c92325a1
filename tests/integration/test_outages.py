"""Dependencies that go away during ingest: the worker waits, resumes by itself, loses nothing."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.stack.embedded import restart
from streamer.stack.processes import free_port, port_open, spawn, stop, wait_until
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration


def texts(n: int) -> list[UploadMessage]:
    return [UploadMessage(id=f"doc-{i}", text=f"record {i} from the archive") for i in range(n)]


def test_milvus_down_for_twenty_seconds(scenario: Scenario) -> None:
    asyncio.run(publish(scenario.settings.kafka, texts(300)))
    worker = scenario.start_worker(STREAMER_BATCH_MAX_BATCH_SIZE="4", STREAMER_SINK_RETRY_MAX_S="2")
    wait_for("ingest under way", lambda: scenario.count("text") >= 20, timeout_s=180)
    scenario.store.close()
    restart(scenario.settings, "milvus", down_s=20)  # the worker keeps consuming meanwhile
    wait_for("ingest resumed by itself", lambda: scenario.count("text") == 300, timeout_s=240)
    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == 300
    assert scenario.stats.read().get("dead_lettered", 0) == 0  # retried, never dropped
    assert worker.poll() is None, scenario.worker_logs()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_down_for_a_while(scenario: Scenario) -> None:
    port = free_port()
    server = spawn(
        "redis-test",
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no"],
        log_dir=scenario.logs,
        marker="redis-server",
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until("redis", lambda: port_open("127.0.0.1", port), timeout_s=20, process=server)
        asyncio.run(publish(scenario.settings.kafka, texts(300)))
        worker = scenario.start_worker(STREAMER_REDIS_URL=url, STREAMER_BATCH_MAX_BATCH_SIZE="4")
        wait_for("ingest under way", lambda: scenario.count("text") >= 20, timeout_s=180)
        stop(server)
        during = scenario.count("text")
        wait_for("ingest going on without Redis",
                 lambda: scenario.count("text") > during + 20, timeout_s=120)  # fmt: skip
        server = spawn("redis-test", server.argv, log_dir=scenario.logs, marker="redis-server")
        wait_for("every asset", lambda: scenario.count("text") == 300, timeout_s=240)
        ids = scenario.store.ids(scenario.collection("text"))
        assert len(ids) == len(set(ids)) == 300
        assert worker.poll() is None, scenario.worker_logs()
    finally:
        stop(server)
