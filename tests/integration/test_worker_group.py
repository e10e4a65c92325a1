"""``streamer worker`` as a group of processes on the embedded stack: one consumer group, one
port for the probes and metrics of all, stopped as one by one SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.stack.processes import free_port
from streamer.worker.shutdown import EXIT_CLEAN
from tests.integration.conftest import Scenario, wait_for
from tests.unit.core.test_metrics import get

pytestmark = pytest.mark.integration

N = 200


def upserted_by_process(body: str) -> dict[str, float]:
    return {
        s.labels["process"]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "streamer_items_total" and s.labels.get("outcome") == "upserted"
    }


def test_two_processes_run_and_stop_as_one_worker(scenario: Scenario) -> None:
    port = free_port(run=3)
    group = scenario.start_worker(
        STREAMER_WORKER_PROCESSES="2",
        STREAMER_WORKER_NAME="grp",
        STREAMER_METRICS_PORT=str(port),
        STREAMER_TOPOLOGIES="topologies:TEXT",
        STREAMER_LOG_FORMAT="json",
        STREAMER_SHUTDOWN_GRACE_S="8",
        STREAMER_BATCH_MAX_BATCH_SIZE="4",
        STREAMER_BATCH_MAX_WAIT_MS="5",
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert group.poll() is None, scenario.worker_logs()
        try:
            return get(f"{base}/readyz")[0] == 200
        except OSError:
            return False

    wait_for("both processes ready", ready, timeout_s=300)
    assert get(f"{base}/readyz")[1] == "ready: 2 processes"
    assert get(f"{base}/healthz") == (200, "ok: 2 processes")

    uploads = [UploadMessage(id=f"doc-{i}", text=f"work item {i} for the group") for i in range(N)]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    wait_for("every item", lambda: scenario.count("text") == N, timeout_s=300)
    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == N

    # one scrape holds both processes' counters, and together they did every item once
    status, body = get(f"{base}/metrics")
    assert status == 200
    assert 'streamer_worker_process_up{process="0"} 1.0' in body
    assert 'streamer_worker_process_up{process="1"} 1.0' in body
    wait_for(
        "the counters of every batch",
        lambda: sum(upserted_by_process(get(f"{base}/metrics")[1]).values()) == N,
        timeout_s=30,
    )
    # each process counts under its own name in the shared stats
    names = set(scenario.stats.per_worker())
    assert names and names <= {"grp-0", "grp-1"}, names

    os.killpg(group.pid, signal.SIGTERM)  # as a terminal's Ctrl-C or an orchestrator would
    code = group.wait(timeout=60)
    log = Path(scenario.logs / "worker-0.log").read_text()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert code == EXIT_CLEAN, log[-4000:]
    stopped = [x for x in lines if x.get("msg") == "worker stopped"]
    assert len(stopped) == 2 and {x["exit_code"] for x in stopped} == {0}, log[-4000:]
    assert all(x["signal"] == "SIGTERM" for x in stopped)  # one signal each, passed on once
    (last,) = [x for x in lines if x.get("msg") == "worker group stopped"]
    assert last["exit_code"] == EXIT_CLEAN and last["codes"] == [0, 0]
    pids = [x["pid"] for x in lines if x.get("msg") == "worker process started"]
    assert len(pids) == 2
    for pid in pids:  # no process outlives the group
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
