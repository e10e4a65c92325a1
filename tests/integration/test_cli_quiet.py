"""Rollout commands on the real stack print their results and streamer's own lines; none of
pymilvus's (it warns on every query iterator that milvus-lite gives no mvcc timestamp)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest

from streamer.config.settings import settings_env
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration

V2 = "minilm-l6-cls@2"
LIBRARY_LINE = re.compile(r"^\S+ +[A-Z]+ +(aiokafka|kafka|pymilvus|grpc|milvus_lite|faust|mode)\b")


def test_rollout_commands_print_no_library_warnings(scenario: Scenario) -> None:
    uploads = [UploadMessage(id=f"doc-{i}", text=f"note {i}: a mild day") for i in range(8)]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    scenario.start_worker()
    wait_for("the first version", lambda: scenario.count("text") == len(uploads), timeout_s=240)
    env = {**os.environ, **settings_env(scenario.settings)}
    env.pop("STREAMER_LOG_LEVEL", None)  # the default level, as a user runs them
    for command in (
        ["start", "text", "--model", V2],
        ["backfill", "text", "--batch", "4"],
        ["compare", "text", "--queries", "3"],
        ["status", "text"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "streamer", "rollout", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "mvccTs" not in done.stderr and "[WARNING][" not in done.stderr, done.stderr
        library = [line for line in done.stderr.splitlines() if LIBRARY_LINE.match(line)]
        assert not library, done.stderr
