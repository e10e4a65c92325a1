"""``streamer up`` / ``down`` on a stack of their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamer.config.settings import load_settings
from streamer.stack.embedded import down, read_state, up
from tests.integration.conftest import stack_env

pytestmark = pytest.mark.integration


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    settings = load_settings(env)
    first, started = up(settings)
    try:
        assert started
        assert all(p.alive() for p in first.processes)
        again, started_again = up(load_settings(env))
        assert not started_again
        assert again == first
        found = load_settings(env)
        assert found.kafka.bootstrap_servers == first.kafka_bootstrap
        assert found.milvus.uri == first.milvus_uri
    finally:
        stopped = down(settings)
    assert {"kafka", "milvus"} <= set(stopped)
    assert not any(p.alive() for p in first.processes)
    assert read_state(tmp_path) is None
    assert down(settings) == []


def test_cli_up_prints_addresses_and_down_stops(tmp_path: Path) -> None:
    import os

    env = {**os.environ, **stack_env(tmp_path)}
    command = [sys.executable, "-m", "streamer"]
    out = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, check=True)
    try:
        assert "kafka" in out.stdout and "milvus" in out.stdout and "redis" in out.stdout
        state = read_state(tmp_path)
        assert state is not None
    finally:
        done = subprocess.run(
            [*command, "down"], env=env, capture_output=True, text=True, check=True
        )
    assert "stopped" in done.stdout
    assert not any(p.alive() for p in state.processes)
