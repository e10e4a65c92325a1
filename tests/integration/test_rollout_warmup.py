"""Rollouts without latency spikes: live workers warm the candidate when the rollout starts and
say so in their presence records; ``promote`` waits for every live worker, names the ones not
ready, and the first search after the switch finds the candidate's model warm."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from streamer.cli.rollout import rollout
from streamer.config.settings import settings_env
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.query.client import SyncSearchClient
from streamer.rollout.commands import Rollouts
from streamer.rollout.presence import Presence, presence_record
from streamer.stack.processes import start_worker
from tests.integration.conftest import Scenario, wait_for
from topologies import DEFAULT_TOPOLOGIES

pytestmark = pytest.mark.integration

V1, V2 = "minilm-l6@1", "minilm-l6-cls@2"
# what a worker logs when it loads a model, warms its shapes, or meets a cold shape
COLD_LINES = ("model loaded", "model warmed", "first model call at a new batch shape")


def texts(n: int) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"doc-{i}", text=f"note {i}: the weather in city {i % 13} is mild")
        for i in range(n)
    ]


def test_workers_warm_the_candidate_and_promote_waits_for_every_live_one(
    scenario: Scenario,
) -> None:
    settings = scenario.settings
    asyncio.run(publish(settings.kafka, texts(20)))
    ingest = scenario.start_worker(STREAMER_WORKER_NAME="w-ingest")
    searcher_log = scenario.logs / "worker-search.log"
    env = {**settings_env(settings), "STREAMER_WORKER_NAME": "w-search"}
    scenario.workers.append(start_worker(env, searcher_log, agents="search"))
    wait_for("the first version", lambda: scenario.count("text") == 20, timeout_s=240)
    rollouts = Rollouts(settings, DEFAULT_TOPOLOGIES)
    presence = rollouts.presence

    def live() -> dict[str, tuple[str, ...]]:
        return {w.worker: w.topologies.get("text", ()) for w in presence.live()}

    wait_for("both workers reporting", lambda: set(live()) == {"w-ingest", "w-search"})
    assert {w.worker: w.agents for w in presence.live()} == {
        "w-ingest": ("ingest", "search"),
        "w-search": ("search",),
    }
    assert all(V1 in versions and V2 not in versions for versions in live().values())

    # rollout start alone makes every live worker load, calibrate and warm the candidate
    rollouts.start("text", V2)
    ready = lambda: presence.readiness("text", V2)  # noqa: E731
    wait_for("the candidate warm in both workers", lambda: ready().done and len(ready().live) == 2)
    assert scenario.stats.read().get("search_requests", 0) == 0, "a search was made"
    assert "model version warm" in scenario.worker_logs()
    status = CliRunner().invoke(rollout, ["status", "text"], env=settings_env(settings))
    assert status.exit_code == 0, status.output
    assert "live workers: 2" in status.output
    [line] = [line for line in status.output.splitlines() if "w-search" in line]
    assert line.split(maxsplit=1)[1] == f"warm: {V2}, {V1} (search)", status.output
    rollouts.backfill("text", batch_size=16)

    # a live worker without the candidate warm stops the promotion, named with its reason
    ghost = Presence(scenario.redis, prefix=settings.redis.key_prefix, ttl_s=600)
    ghost.publish(presence_record("ghost-worker", ["search"], {"text": [V1]}))
    command = [sys.executable, "-m", "streamer", "rollout", "promote", "text"]
    cli_env = {**os.environ, **settings_env(settings)}
    refused = subprocess.run(
        [*command, "--wait", "1"], env=cli_env, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode != 0
    assert (
        f"2 of 3 live workers hold {V2} warm; not ready: ghost-worker (not seen yet)"
        in refused.stderr
    ), refused.stderr
    assert rollouts.status("text")["serving"] == V1

    # forced, it promotes; the first search is answered by the candidate, and no worker loads
    # or warms a model, or meets a cold shape, after the switch
    logs = sorted(scenario.logs.glob("*.log"))
    offsets = {path: path.stat().st_size for path in logs}
    forced = subprocess.run(
        [*command, "--force"], env=cli_env, capture_output=True, text=True, timeout=300
    )
    assert forced.returncode == 0, forced.stderr
    assert "ghost-worker" in forced.stderr  # the warning names who was not ready
    assert rollouts.status("text")["serving"] == V2
    with SyncSearchClient(settings.kafka, timeout_s=60) as client:
        first = client.search("weather in a city", top_k=5)
    assert first.error is None and first.model_version == V2 and len(first.hits) == 5
    for path in logs:
        with path.open("rb") as log:
            log.seek(offsets[path])
            after = log.read().decode(errors="replace")
        assert not [line for line in COLD_LINES if line in after], (path.name, after[-3000:])

    # a worker that stops takes its presence record with it
    scenario.kill(ingest, signal.SIGTERM)
    assert "w-ingest" not in live()
    ghost.remove("ghost-worker")
    rollouts.close()
