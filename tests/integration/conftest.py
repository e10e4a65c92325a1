"""The real embedded stack (Tansu, Redis, milvus-lite server), started once per test session.

Each test works in a namespace of its own: topics, consumer group, collections and Redis keys,
removed afterwards. Workers are real ``streamer worker`` processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from streamer.config.settings import Settings, load_settings, namespaced, settings_env
from streamer.config.topics import ensure_topics
from streamer.core.errors import TransientError
from streamer.core.stats import Stats
from streamer.stack.embedded import down, up
from streamer.stack.processes import start_worker, terminate
from streamer.storage.store import VectorStore

pytestmark = pytest.mark.integration


def stack_env(state_dir: Path) -> dict[str, str]:
    env = {
        "STREAMER_STACK_STATE_DIR": str(state_dir),
        "STREAMER_STACK_KAFKA_PORT": "0",
        "STREAMER_STACK_MILVUS_PORT": "0",
        "STREAMER_STACK_REDIS_PORT": "0",
        # workers use the declared batch sizes: calibration is tested on its own, and
        # measuring on a busy CI machine would only slow every worker start
        "STREAMER_BATCH_CALIBRATE": "off",
    }
    if "STREAMER_REDIS_URL" in os.environ:
        env["STREAMER_REDIS_URL"] = os.environ["STREAMER_REDIS_URL"]
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    env = stack_env(tmp_path_factory.mktemp("stack"))
    settings = load_settings(env)
    up(settings)
    try:
        yield load_settings(env)
    finally:
        down(settings, purge=True)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except TransientError:
            pass  # a server coming back: not yet
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class Scenario:
    """One test's namespace on the shared stack, with helpers to drive and observe it."""

    def __init__(self, base: Settings, media: Path, logs: Path) -> None:
        self.namespace = f"t{uuid.uuid4().hex[:10]}"
        self.media = media
        self.logs = logs
        self.settings = namespaced(base, self.namespace, (media,))
        self.store = VectorStore(self.settings.milvus)
        self.redis = redis.Redis.from_url(self.settings.redis.url)
        self.stats = Stats(self.redis, prefix=self.settings.redis.key_prefix)
        self.workers: list[subprocess.Popen[bytes]] = []
        asyncio.run(ensure_topics(self.settings.kafka))

    def collection(self, topology: str) -> str:
        from topologies import IMAGE, TEXT

        chosen = IMAGE if topology == "image" else TEXT
        return chosen.collection_name(prefix=self.settings.milvus.collection_prefix)

    def count(self, topology: str) -> int:
        name = self.collection(topology)
        return self.store.count(name) if self.store.collections(name) else 0

    def start_worker(self, **extra_env: str) -> subprocess.Popen[bytes]:
        env = {**settings_env(self.settings), **extra_env}
        proc = start_worker(env, self.logs / f"worker-{len(self.workers)}.log")
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.workers:
            terminate(proc)
        for name in self.store.collections(self.settings.milvus.collection_prefix):
            self.store.drop(name)
        for key in self.redis.scan_iter(match=f"{self.settings.redis.key_prefix}:*"):
            self.redis.delete(key)
        self.store.close()
        self.redis.close()

    def worker_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def scenario(stack: Settings, tmp_path: Path) -> Iterator[Scenario]:
    media = tmp_path / "media"
    logs = tmp_path / "logs"
    media.mkdir()
    logs.mkdir()
    scenario = Scenario(stack, media, logs)
    try:
        yield scenario
    finally:
        scenario.close()
