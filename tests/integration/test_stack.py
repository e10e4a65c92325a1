"""``streamer up`` / ``down`` on a stack of their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamer.config.settings import load_settings
from streamer.core.errors import StackError
from streamer.stack.embedded import down, read_state, up
from streamer.stack.processes import ManagedProcess
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


def test_a_stack_with_a_milvus_server_writes_and_leaves_nothing(tmp_path: Path) -> None:
    """``STREAMER_STACK_MILVUS=server``: the stack's Milvus is a Milvus standalone server (its
    own processes under the stack's wrapper), which takes writes and is gone after ``down``."""
    import numpy as np

    from streamer.bench.observe import group_children
    from streamer.storage.store import VectorRow, VectorStore

    env = {**stack_env(tmp_path), "STREAMER_STACK_MILVUS": "server"}
    settings = load_settings(env)
    state, started = up(settings)
    try:
        assert started and state.milvus_data_dir == str(tmp_path / "milvus-server")
        (milvus,) = [p for p in state.processes if p.name == "milvus"]
        assert "streamer.stack.milvus_server" in " ".join(milvus.argv)
        store = VectorStore(load_settings(env).milvus.model_copy(update={"flush_rows": 0}))
        try:
            store.ensure_collection("probe", 4)
            vector = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
            row = VectorRow(
                id="a", vector=vector, content_hash="0" * 64, model_version="m@1",
                media_type="text",
            )  # fmt: skip
            assert store.upsert("probe", [row]) == 1
            assert store.count("probe") == 1
        finally:
            store.close()
        server_pids = group_children(milvus.pid)  # the server binary, under its wrapper
        # the stack runs one Milvus: asked for milvus-lite now, it says so instead of
        # answering with the server
        with pytest.raises(StackError, match="streamer down"):
            up(load_settings(stack_env(tmp_path)))
    finally:
        down(settings)
    assert not milvus.alive()
    for pid in server_pids:  # the server went with its wrapper
        assert not ManagedProcess("server", pid, marker="milvus", log="").alive(), pid
