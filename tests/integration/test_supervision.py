"""A crashed ingest agent ends its worker process instead of leaving it alive and idle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from streamer.messages import UploadMessage
from streamer.producer import publish
from streamer.settings import settings_env
from tests.integration.conftest import Scenario

pytestmark = pytest.mark.integration

# The real app and agent, with a pipeline that fails as a bug would (not as bad input does).
CRASHING_WORKER = textwrap.dedent(
    """
    import faust
    from streamer.app import create_app
    from streamer.logs import configure_logging
    from streamer.settings import load_settings
    from topologies import DEFAULT_TOPOLOGIES

    class BuggyPipeline:
        async def process(self, records):
            raise RuntimeError("a bug in the pipeline")

    configure_logging("INFO")
    app = create_app(load_settings(), DEFAULT_TOPOLOGIES, BuggyPipeline())
    worker = faust.Worker(app, loglevel="INFO", override_logging=False, quiet=True)
    worker.execute_from_commandline()
    """
)


def test_agent_crash_stops_the_worker(scenario: Scenario) -> None:
    script = scenario.media.parent / "crashing_worker.py"
    script.write_text(CRASHING_WORKER)
    log = scenario.logs / "crashing.log"
    env = {**os.environ, **settings_env(scenario.settings)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=out)
    try:
        asyncio.run(publish(scenario.settings.kafka, [UploadMessage(id="x", text="hello")]))
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.returncode not in (None, 0), log.read_text()
        assert "a bug in the pipeline" in log.read_text()
        assert scenario.count("text") == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
