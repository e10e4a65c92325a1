"""A crashed agent ends its worker process instead of leaving it alive and idle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from streamer.config.settings import settings_env
from streamer.core.messages import SearchRequest, UploadMessage
from streamer.ingest.producer import publish, publish_raw
from tests.integration.conftest import Scenario

pytestmark = pytest.mark.integration

# The real app and agents, with parts that fail as a bug would (not as bad input does).
CRASHING_WORKER = textwrap.dedent(
    """
    import sys
    import faust
    from streamer.worker.app import create_app
    from streamer.config.logs import configure_logging
    from streamer.config.settings import load_settings
    from topologies import DEFAULT_TOPOLOGIES

    class Buggy:
        plans = None  # the declared batch sizes

        async def process(self, records):
            raise RuntimeError("a bug in the pipeline")

        async def answer(self, values, keys, **stamps):
            raise RuntimeError("a bug in the search service")

    configure_logging("INFO")
    which = sys.argv[1]
    app = create_app(
        load_settings(),
        DEFAULT_TOPOLOGIES,
        Buggy() if which == "ingest" else None,
        Buggy() if which == "search" else None,
    )
    worker = faust.Worker(app, loglevel="INFO", override_logging=False, quiet=True)
    worker.execute_from_commandline()
    """
)


@pytest.mark.parametrize("agent", ["ingest", "search"])
def test_a_crashed_agent_stops_the_worker(scenario: Scenario, agent: str) -> None:
    script = scenario.media.parent / "crashing_worker.py"
    script.write_text(CRASHING_WORKER)
    log = scenario.logs / f"crashing-{agent}.log"
    env = {**os.environ, **settings_env(scenario.settings)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script), agent], env=env, stdout=out, stderr=out
        )
    try:
        kafka = scenario.settings.kafka
        if agent == "ingest":
            asyncio.run(publish(kafka, [UploadMessage(id="x", text="hello")]))
        else:
            request = SearchRequest(
                request_id="r", text="hello", reply_to=kafka.search_results_topic
            )
            records = [(b"r", request.model_dump_json().encode())]
            asyncio.run(publish_raw(kafka, records, topic=kafka.search_requests_topic))
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.returncode not in (None, 0), log.read_text()
        assert f"a bug in the {'pipeline' if agent == 'ingest' else 'search service'}" in (
            log.read_text()
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
