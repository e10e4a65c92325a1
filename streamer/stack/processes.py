"""Background processes that outlive the command that started them, and their clean stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.core.errors import StackError

__all__ = [
    "ManagedProcess",
    "ProcessExited",
    "exit_status",
    "free_port",
    "port_open",
    "spawn",
    "stop",
    "terminate",
    "wait_until",
]


class ProcessExited(StackError):
    """A server process ended while it was starting."""


@dataclass(frozen=True, slots=True)
class ManagedProcess:
    name: str
    pid: int
    marker: str  # a word of its command line, to recognise it after a pid is reused
    log: str
    argv: tuple[str, ...] = ()

    def alive(self) -> bool:
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ")
            status = Path(f"/proc/{self.pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return status != "Z" and self.marker.encode() in cmdline


def free_port(run: int = 1) -> int:
    """A free port below the kernel's ephemeral range, so no outgoing connection takes it
    between this check and the server's bind; with ``run``, the first of that many free
    ports in a row (a worker group's port and its processes')."""
    for _ in range(200):
        port = random.randint(20_000, 32_000 - run)
        with contextlib.ExitStack() as held:
            try:
                for p in range(port, port + run):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", p))
            except OSError:
                continue
            return port
    raise StackError("no free port found in 20000-32000")


def exit_status(pid: int) -> str:
    """How a child of this process ended, if it has."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "exited"
    if done == 0:
        return "running"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def spawn(name: str, argv: Sequence[str], *, log_dir: Path, marker: str) -> ManagedProcess:
    """Start ``argv`` in its own session, detached from the terminal, logging to a file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    process = ManagedProcess(
        name=name, pid=proc.pid, marker=marker, log=str(log_path), argv=tuple(argv)
    )
    # Popen can return before the kernel shows the new program's command line; wait for it so
    # that alive() (which checks the marker) never mistakes a starting process for a dead one.
    deadline = time.monotonic() + 5
    while not process.alive() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return process


def wait_until(
    what: str, check: Callable[[], bool], *, timeout_s: float, process: ManagedProcess | None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and not process.alive():
            raise ProcessExited(
                f"{what} {exit_status(process.pid)} during start-up; see {process.log}"
            )
        time.sleep(0.2)
    where = f"; see {process.log}" if process else ""
    raise StackError(f"{what} not ready after {timeout_s:.0f}s{where}")


def stop(process: ManagedProcess, *, grace_s: float = 10.0) -> None:
    """SIGTERM its process group, then SIGKILL after ``grace_s``; returns when it is gone."""
    if not process.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and process.alive():
        _reap(process.pid)
        time.sleep(0.1)
    if process.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and process.alive():
            _reap(process.pid)
            time.sleep(0.1)
    if process.alive():
        raise StackError(f"{process.name} (pid {process.pid}) did not stop")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start_worker(
    env: Mapping[str, str], log_path: Path, *, agents: str | None = None
) -> subprocess.Popen[bytes]:
    """A ``streamer worker`` child (in its own session) with ``env`` added to this process's
    environment, writing its output to ``log_path``; ``agents`` limits it to one agent."""
    argv = [sys.executable, "-m", "streamer", "worker"]
    if agents is not None:
        argv += ["--agents", agents]
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(proc: subprocess.Popen[bytes], *, grace_s: float = 20.0) -> None:
    """SIGTERM a child started in its own session, SIGKILL it after ``grace_s``; reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
