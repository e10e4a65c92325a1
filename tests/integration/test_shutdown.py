"""SIGTERM stops a worker within its grace in every state, says how in one line and its exit
code, and a restarted worker ends with every id exactly once.

The tests run on an embedded stack of their own, so its broker and Milvus can go away without
touching the other tests' stack; Redis goes away as a server of the test's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.config.settings import Settings
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.stack.embedded import read_state, start_server, stop_server
from streamer.stack.processes import free_port, port_open, spawn, stop, wait_until
from streamer.worker.shutdown import EXIT_CLEAN, EXIT_FORCED
from tests.integration.conftest import Scenario, embedded_stack, wait_for
from tests.unit.core.test_metrics import get

pytestmark = pytest.mark.integration

GRACE_S = 8.0
# a signal is handled on the worker's event loop, and a loaded CI machine can be slow to run it
SLACK_S = 4.0
N = 120


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with embedded_stack(tmp_path_factory.mktemp("own-stack")) as settings:
        yield settings


@pytest.fixture
def scene(own_stack: Settings, tmp_path: Path) -> Iterator[Scenario]:
    (tmp_path / "media").mkdir()
    (tmp_path / "logs").mkdir()
    scenario = Scenario(own_stack, tmp_path / "media", tmp_path / "logs")
    try:
        yield scenario
    finally:
        for name in ("kafka", "milvus"):
            start_server(own_stack, name)  # back, whatever the test did
        scenario.close()


def texts(n: int) -> list[UploadMessage]:
    return [UploadMessage(id=f"doc-{i}", text=f"line {i} of the shutdown log") for i in range(n)]


def start(scene: Scenario, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    worker = scene.start_worker(
        STREAMER_TOPOLOGIES="topologies:TEXT",
        STREAMER_SHUTDOWN_GRACE_S=str(GRACE_S),
        STREAMER_METRICS_PORT=str(port),
        STREAMER_LOG_FORMAT="json",
        **env,
    )
    url = f"http://127.0.0.1:{port}/readyz"
    wait_for("the worker ready", lambda: _ready(url, worker), timeout_s=240)
    return worker, port


def _ready(url: str, worker: subprocess.Popen[bytes]) -> bool:
    assert worker.poll() is None, "the worker exited while starting"
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def sigterm(scene: Scenario, worker: subprocess.Popen[bytes]) -> tuple[int, float, dict]:
    """SIGTERM the worker; its exit code, seconds to exit and its last line."""
    started = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        code = worker.wait(timeout=GRACE_S + 60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        raise AssertionError(f"the worker ignored SIGTERM\n{scene.worker_logs()}") from None
    took = time.monotonic() - started
    log = Path(scene.logs / f"worker-{scene.workers.index(worker)}.log").read_text()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    stopped = [x for x in lines if x.get("msg") == "worker stopped"]
    assert len(stopped) == 1, log[-3000:]
    assert took <= GRACE_S + SLACK_S, f"stopped after {took:.1f}s\n{log[-3000:]}"
    assert stopped[0]["exit_code"] == code, stopped[0]
    return code, took, stopped[0]


def every_id_once(scene: Scenario, n: int = N) -> None:
    wait_for("every text", lambda: scene.count("text") == n, timeout_s=240)
    ids = scene.store.ids(scene.collection("text"))
    assert len(ids) == len(set(ids)) == n
    assert set(ids) == {f"doc-{i}" for i in range(n)}


def test_idle(scene: Scenario) -> None:
    worker, _ = start(scene)
    code, _, line = sigterm(scene, worker)
    assert code == EXIT_CLEAN, line
    assert line["how"].startswith("clean") and line["signal"] == "SIGTERM"


def test_sigint_mid_stream_finishes_the_batches_in_flight(scene: Scenario) -> None:
    n = 1500  # text is fast: enough that the signal finds work in flight
    asyncio.run(publish(scene.settings.kafka, texts(n)))
    worker, _ = start(scene, STREAMER_BATCH_MAX_BATCH_SIZE="2", STREAMER_BATCH_MAX_WAIT_MS="5")
    wait_for("ingest under way", lambda: scene.count("text") >= 8, timeout_s=240)
    started = time.monotonic()
    os.killpg(worker.pid, signal.SIGINT)
    code = worker.wait(timeout=GRACE_S + 60)
    assert time.monotonic() - started <= GRACE_S + SLACK_S, scene.worker_logs()
    assert code == EXIT_CLEAN, scene.worker_logs()
    assert scene.count("text") < n, "the worker finished before the signal; this proves nothing"
    assert "batch done" in scene.worker_logs()
    start(scene)
    every_id_once(scene, n)


def test_milvus_gone_mid_batch(scene: Scenario, own_stack: Settings) -> None:
    asyncio.run(publish(scene.settings.kafka, texts(N)))
    worker, _ = start(
        scene, STREAMER_BATCH_MAX_BATCH_SIZE="4", STREAMER_BATCH_MAX_WAIT_MS="5",
        STREAMER_SINK_RETRY_MAX_S="1",
    )  # fmt: skip
    wait_for("ingest under way", lambda: scene.count("text") >= 8, timeout_s=240)
    scene.store.close()
    stop_server(own_stack, "milvus")
    time.sleep(2)  # a batch now retries its write
    code, _, line = sigterm(scene, worker)
    assert code == EXIT_FORCED, line  # the batch could not finish: left for redelivery
    assert line["batches_unacknowledged"] >= 1, line
    start_server(own_stack, "milvus")
    start(scene)
    every_id_once(scene)


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_broker_gone(scene: Scenario, own_stack: Settings, how: str) -> None:
    """``stopped``: the broker is down (``streamer down``); ``frozen``: it answers nothing (a
    network partition). The embedded broker keeps messages in memory, so only a frozen one
    comes back with them, and only there is the restart checked."""
    asyncio.run(publish(scene.settings.kafka, texts(N)))
    worker, _ = start(scene, STREAMER_BATCH_MAX_BATCH_SIZE="4", STREAMER_BATCH_MAX_WAIT_MS="5")
    wait_for("ingest under way", lambda: scene.count("text") >= 8, timeout_s=240)
    state = read_state(own_stack.stack.state_dir)
    assert state is not None
    broker = next(p for p in state.processes if p.name == "kafka")
    if how == "stopped":
        stop_server(own_stack, "kafka")
    else:
        os.kill(broker.pid, signal.SIGSTOP)
    try:
        time.sleep(3)
        code, _, line = sigterm(scene, worker)
        assert code in (EXIT_CLEAN, EXIT_FORCED), line
    finally:
        if how == "frozen":
            os.kill(broker.pid, signal.SIGCONT)
    if how == "frozen":
        start(scene)
        every_id_once(scene)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_redis_gone(scene: Scenario) -> None:
    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no"]  # fmt: skip
    server = spawn("redis-shutdown", argv, log_dir=scene.logs, marker="redis-server")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until("redis", lambda: port_open("127.0.0.1", port), timeout_s=20, process=server)
        asyncio.run(publish(scene.settings.kafka, texts(N)))
        worker, _ = start(
            scene, STREAMER_REDIS_URL=url, STREAMER_BATCH_MAX_BATCH_SIZE="4",
            STREAMER_BATCH_MAX_WAIT_MS="5",
        )  # fmt: skip
        wait_for("ingest under way", lambda: scene.count("text") >= 8, timeout_s=240)
        stop(server)
        time.sleep(2)
        code, _, line = sigterm(scene, worker)
        assert code in (EXIT_CLEAN, EXIT_FORCED), line
        server = spawn("redis-shutdown", argv, log_dir=scene.logs, marker="redis-server")
        wait_until("redis", lambda: port_open("127.0.0.1", port), timeout_s=20, process=server)
        start(scene, STREAMER_REDIS_URL=url)
        every_id_once(scene)
    finally:
        stop(server)
