"""Commands print their own errors, not the libraries' lines about the same failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.stack.processes import free_port


@pytest.mark.parametrize("command", [["produce", "--text", "a cat"], ["topics", "create"]])
def test_an_unreachable_broker_is_one_error_line(tmp_path: Path, command: list[str]) -> None:
    env = {
        **os.environ,
        "STREAMER_STACK_STATE_DIR": str(tmp_path / "no-stack"),  # no embedded stack's address
        "STREAMER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens
    }
    env.pop("STREAMER_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "streamer", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "error: kafka unavailable: cannot reach" in done.stderr
    # aiokafka logs the refused connection too, as an ERROR: the same news, said twice
    libraries = re.compile(r"^\S+ +[A-Z]+ +(aiokafka|kafka|pymilvus|grpc|milvus_lite)\b")
    assert not [line for line in done.stderr.splitlines() if libraries.match(line)], done.stderr
