"""The real embedded stack (Tansu, Redis, milvus-lite server), started once per test session.

Each test works in a namespace of its own: topics, consumer group, collections and Redis keys,
removed afterwards. Workers are real ``streamer worker`` processes.

Tests of the Milvus paths also run against a real Milvus server (the ``milvus`` package: a
Milvus 2.3 standalone with its own etcd, started once when first needed): a module marked with
``BOTH_MILVUS`` runs each test with ``milvus_backend`` set to ``lite`` and to ``server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from streamer.config.settings import (
    MilvusSettings,
    Settings,
    load_settings,
    namespaced,
    settings_env,
)
from streamer.core.errors import StackError, TransientError
from streamer.core.stats import Stats
from streamer.kafka.topics import ensure_topics
from streamer.stack.embedded import down, up
from streamer.stack.milvus_server import milvus_standalone
from streamer.stack.processes import free_port, start_worker, terminate
from streamer.storage.store import VectorStore

pytestmark = pytest.mark.integration

BOTH_MILVUS = pytest.mark.parametrize(
    "milvus_backend", ["lite", "server"], indirect=True, scope="module"
)


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


@contextlib.contextmanager
def embedded_stack(state_dir: Path) -> Iterator[Settings]:
    """An embedded stack of its own in ``state_dir``, on free ports; purged afterwards."""
    env = stack_env(state_dir)
    settings = load_settings(env)
    up(settings)
    try:
        yield load_settings(env)
    finally:
        down(settings, purge=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with embedded_stack(tmp_path_factory.mktemp("stack")) as settings:
        yield settings


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus server on free ports, data in a temporary folder; yields its uri."""
    data_dir = tmp_path_factory.mktemp("milvus-server")
    try:
        with milvus_standalone(data_dir, free_port()) as server:
            yield server.uri
    except StackError as exc:
        pytest.fail(str(exc))  # its data stays, for the log
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def milvus_backend(request: pytest.FixtureRequest, stack: Settings) -> MilvusSettings:
    """The Milvus a test talks to: the stack's milvus-lite, or the real server where a module is
    marked ``BOTH_MILVUS``. The server seals segments itself, so nothing flushes."""
    if getattr(request, "param", "lite") == "lite":
        return stack.milvus
    uri = request.getfixturevalue("milvus_server")
    return stack.milvus.model_copy(update={"uri": uri, "flush_rows": 0})


@pytest.fixture
def settings(milvus_backend: MilvusSettings) -> Iterator[MilvusSettings]:
    """The test's Milvus with a collection prefix of its own; its collections dropped after."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    settings = milvus_backend.model_copy(update={"collection_prefix": prefix})
    yield settings
    store = VectorStore(settings)
    for name in store.collections(prefix):
        store.drop(name)
    store.close()


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

    def __init__(
        self, base: Settings, media: Path, logs: Path, milvus: MilvusSettings | None = None
    ) -> None:
        self.namespace = f"t{uuid.uuid4().hex[:10]}"
        self.media = media
        self.logs = logs
        base = base.model_copy(update={"milvus": milvus}) if milvus is not None else base
        self.settings = namespaced(base, self.namespace, (media,))
        self.store = VectorStore(self.settings.milvus)
        self.redis = redis.Redis.from_url(self.settings.redis.url)
        self.stats = Stats(self.redis, prefix=self.settings.redis.key_prefix)
        self.workers: list[subprocess.Popen[bytes]] = []
        asyncio.run(ensure_topics(self.settings.kafka))

    def collection(self, topology: str) -> str:
        from topologies import DEFAULT_TOPOLOGIES

        chosen = next(t for t in DEFAULT_TOPOLOGIES if t.name == topology)
        return chosen.collection_name(prefix=self.settings.milvus.collection_prefix)

    def count(self, topology: str) -> int:
        name = self.collection(topology)
        return self.store.count(name) if self.store.collections(name) else 0

    def wait_searchable(self, collection: str) -> None:
        """Wait until searches see every row of ``collection``. At the searches' default level
        (Bounded) a Milvus server shows a write only after its gracefulTime (5 s)."""
        assert self.store.wait_searchable(collection, timeout_s=120), f"{collection} lags"

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
def scenario(stack: Settings, milvus_backend: MilvusSettings, tmp_path: Path) -> Iterator[Scenario]:
    media = tmp_path / "media"
    logs = tmp_path / "logs"
    media.mkdir()
    logs.mkdir()
    scenario = Scenario(stack, media, logs, milvus_backend)
    try:
        yield scenario
    finally:
        scenario.close()
