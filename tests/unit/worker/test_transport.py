"""The ingest consumer's fetch wait comes from the settings (faust hard-codes 1500 ms)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from streamer.config.settings import load_settings
from streamer.worker.app import create_app
from topologies import TEXT


def fetch_wait_of(app: faust.App) -> int:
    async def build() -> int:
        thread = app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._create_worker_consumer(app.transport)
        return int(consumer._fetch_max_wait_ms)

    return asyncio.run(build())


def test_faust_alone_waits_one_and_a_half_seconds(tmp_path: Path) -> None:
    app = faust.App("plain", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert fetch_wait_of(app) == 1500


def test_the_worker_waits_as_configured(tmp_path: Path) -> None:
    env = {"STREAMER_STACK_STATE_DIR": str(tmp_path), "STREAMER_KAFKA_FETCH_MAX_WAIT_MS": "40"}
    app = create_app(load_settings(env), [TEXT], pipeline=None)
    assert fetch_wait_of(app) == 40
    default = create_app(load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)}), [TEXT], None)
    assert fetch_wait_of(default) == 100
