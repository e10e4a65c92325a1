"""A worker joining a group whose member is busy gets partitions within a minute.

The busy member is a worker whose model calls do not end until the test releases them (a slow
model on a small CPU, or a sink retrying through an outage, look the same to the group). On
the embedded broker (Tansu) a rebalance waits for the group's leader to join again, and Tansu
drops no member that still heartbeats, so a newcomer used to wait for as long as the busy
member's batches took: faust rejoined only once every message it had taken was processed. The
worker now waits for its batches in flight at most the rebalance timeout less two heartbeats;
see :mod:`streamer.worker.transport`.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration

#: the bound the issue sets: from the newcomer asking to join to its first partitions
JOIN_BOUND_S = 60.0
UPLOADS = 16

# A topology of the test's own (written to a temporary folder): the fake decoder and model of
# streamer.testing, the model holding every call on uploads (not the warm-up's samples) while
# the file named by BUSY_WHILE exists (in the worker given one), for ten minutes at most.
BUSY_TOPOLOGY = textwrap.dedent(
    """
    import os
    import time
    from dataclasses import dataclass
    from pathlib import Path

    from operators import Fetch, Normalize
    from streamer.runner import BatchPolicy, Topology
    from streamer.testing import FakeDecode, FakeEmbed, FakeModel


    class BusyModel(FakeModel):
        def __init__(self, dim, tally, busy_while):
            super().__init__(dim, tally)
            self.busy_while = busy_while

        def __call__(self, batch):
            deadline = time.monotonic() + 600
            if self.busy_while and any(item.startswith(b"upload") for item in batch):
                while self.busy_while.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
            return super().__call__(batch)


    @dataclass(frozen=True)
    class BusyEmbed(FakeEmbed):
        def load(self, device, precision):
            flag = os.environ.get("BUSY_WHILE")
            return BusyModel(self.dim, self.tally, Path(flag) if flag else None)


    BUSY = Topology(
        name="busy",
        media_type="text",
        stages=(Fetch(), FakeDecode(), BusyEmbed(8, batch=BatchPolicy(4, 10)), Normalize()),
        model_version="busy@1",
    )
    """
)


def log_records(path: Path) -> list[dict[str, Any]]:
    """The JSON log records of a worker (other lines, such as faust's banner, skipped)."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a write in progress
    return records


def first(path: Path, msg: str, topic: str | None = None) -> float | None:
    """When a worker first logged ``msg`` (about a partition of ``topic``, if given)."""
    for record in log_records(path):
        partitions = record.get("partitions") or []
        if record.get("msg") == msg and (topic is None or any(topic in p for p in partitions)):
            return float(record["ts"])
    return None


def test_a_worker_joining_a_busy_group_gets_partitions_within_a_minute(
    scenario: Scenario,
) -> None:
    module_dir = scenario.media.parent / "user_code"
    module_dir.mkdir()
    (module_dir / "busy_topology.py").write_text(BUSY_TOPOLOGY)
    busy_while = scenario.media.parent / "busy"
    busy_while.touch()
    env = {
        "PYTHONPATH": os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")]),
        "STREAMER_TOPOLOGIES": "busy_topology:BUSY",
        "STREAMER_LOG_FORMAT": "json",
    }
    collection = f"{scenario.settings.milvus.collection_prefix}busy__busy_1"
    uploads = [UploadMessage(id=f"doc-{i}", text=f"upload {i}") for i in range(UPLOADS)]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    topic = scenario.settings.kafka.uploads_topic

    busy = scenario.start_worker(STREAMER_WORKER_NAME="busy", BUSY_WHILE=str(busy_while), **env)
    busy_log = scenario.logs / "worker-0.log"
    wait_for(
        "the first worker's partitions",
        lambda: first(busy_log, "partitions assigned", topic) is not None,
        timeout_s=240,
    )
    # it takes every upload at once (two batches in flight, one waiting for room, one in
    # faust's buffer) and its model calls hold them until the test says
    newcomer = scenario.start_worker(STREAMER_WORKER_NAME="newcomer", **env)
    newcomer_log = scenario.logs / "worker-1.log"
    # faust calls the revocation hook before each JoinGroup, the first one included
    wait_for(
        "the newcomer asking to join",
        lambda: first(newcomer_log, "rebalance: revoking") is not None,
        timeout_s=240,
    )
    asked = first(newcomer_log, "rebalance: revoking")
    wait_for(
        "the newcomer's partitions",
        lambda: first(newcomer_log, "partitions assigned", topic) is not None,
        timeout_s=JOIN_BOUND_S + 60,  # its own clock decides; this only has to outlast it
    )
    got = first(newcomer_log, "partitions assigned", topic)
    assert asked is not None and got is not None
    assert got - asked <= JOIN_BOUND_S, f"waited {got - asked:.0f}s\n{scenario.worker_logs()}"

    # the newcomer reads its partitions from the last commit: the busy worker's uploads there
    def newcomer_did() -> int:
        return scenario.stats.per_worker().get("newcomer", {}).get("upserted", 0)

    wait_for("the newcomer storing uploads", lambda: newcomer_did() > 0, timeout_s=120)

    # the busy worker's calls end; what it still held is written again, by id, so once
    busy_while.unlink()

    def stored() -> int:
        return scenario.store.count(collection) if scenario.store.collections(collection) else 0

    wait_for("every upload stored", lambda: stored() == UPLOADS, timeout_s=240)
    ids = scenario.store.ids(collection)
    assert len(ids) == len(set(ids)) == UPLOADS
    assert set(ids) == {u.id for u in uploads}
    for proc in (busy, newcomer):
        assert proc.poll() is None, scenario.worker_logs()
