"""``streamer worker --processes N``: N worker processes in one consumer group, run as one.

One worker process is bound by its interpreter lock before a GPU is busy; several processes
in one consumer group share the partitions (and the GPU) between them. The group starts each
process with its share of the machine (:mod:`.shares`), serves one set of endpoints for all of
them (:mod:`.group_endpoints`) and stops them as one:

- On SIGTERM or SIGINT every process gets SIGTERM once and stops as one worker does (its
  batches in flight finish within ``STREAMER_SHUTDOWN_GRACE_S``, see :mod:`.shutdown`); a
  second signal is passed on and ends them at once. A process still there a little after the
  grace is killed (its unacknowledged batches are delivered again, as after any crash).
- A process that ends by itself (an agent crashed, a setting it refused) stops the others and
  the group fails: the orchestrator restarts the pod, as it does a single worker that failed.

With calibration on and the group serving metrics, the first process starts alone and the
others once it is ready: a model calibrated by several processes at once on a shared GPU is
measured contended, and the others find the first one's sizes in the calibration cache.

The processes run in sessions of their own, so a terminal's Ctrl-C (sent to every process of
the foreground group) reaches them once, through the group, not twice (a second signal would
end them at once). Their output goes where the group's goes. The group's exit code is the
worst of its processes' (1 failed, then 3 forced, then 0 clean), and its last log line
(``worker group stopped``) gives each process's code.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence, Set
from types import FrameType
from typing import Final

from streamer.config.settings import Settings
from streamer.core.metrics import serve
from streamer.worker.group_endpoints import GroupEndpoints
from streamer.worker.shares import process_env, process_ports, worker_name
from streamer.worker.shutdown import EXIT_CLEAN, EXIT_FAILED, EXIT_FORCED

__all__ = ["WorkerGroup", "end_with_parent", "group_exit_code", "spawn_worker"]

log = logging.getLogger(__name__)

#: how long past the grace the group waits for a process before killing it (each process's
#: own watchdog ends it within the grace; this covers a process too stuck to run it)
KILL_MARGIN_S: Final = 5.0

PR_SET_PDEATHSIG: Final = 1  # prctl(2)

Spawn = Callable[[int, dict[str, str]], "subprocess.Popen[bytes]"]


def group_exit_code(
    codes: Sequence[int | None], *, killed: Set[int] = frozenset(), signalled: bool = False
) -> int:
    """The group's exit code from its processes' (``None``: still running or never started):
    1 if any failed, else 3 if any was forced (its grace ran out, the group killed it, or the
    group's SIGTERM ended it before it could stop cleanly), else 0."""
    outcomes = set()
    for index, code in enumerate(codes):
        if code is None or code == EXIT_CLEAN:
            continue
        forced = code == EXIT_FORCED or index in killed or (signalled and code == -signal.SIGTERM)
        outcomes.add(EXIT_FORCED if forced else EXIT_FAILED)
    if EXIT_FAILED in outcomes:
        return EXIT_FAILED
    return EXIT_FORCED if outcomes else EXIT_CLEAN


def end_with_parent(parent: int) -> None:
    """In a process of the group (``parent``'s child), before it runs: SIGTERM when the
    group's process ends, even killed (Linux's parent-death signal), so none outlives it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the group ended before the signal was set
        os.kill(os.getpid(), signal.SIGTERM)


def spawn_worker(argv: Sequence[str]) -> Spawn:
    """Start process ``index`` as ``streamer worker <argv>`` with ``env`` over this process's
    environment, in a session of its own, its output where this process's goes."""

    def spawn(index: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer", "worker", *argv],
            env={**os.environ, **env},
            start_new_session=True,
            preexec_fn=functools.partial(end_with_parent, os.getpid()),
        )

    return spawn


class WorkerGroup:
    """Runs ``processes`` worker processes made by ``spawn`` until a signal or a failure."""

    def __init__(
        self,
        settings: Settings,
        processes: int,
        spawn: Spawn,
        *,
        poll_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.processes = processes
        self.spawn = spawn
        self.poll_s = poll_s
        self.clock = clock
        self.name = worker_name(settings)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.signals = 0  # signals received (the loop passes on the first two)
        self._passed_on = 0
        self._stop_by: float | None = None
        self.failed: str | None = None
        port = settings.runtime.metrics_port
        self.endpoints = (
            GroupEndpoints(process_ports(port, processes), self.running) if port else None
        )
        # a model calibrated by several processes at once on one GPU is measured contended
        # (seen: 64 and 128 picked where 256 was fastest): the first process calibrates alone
        # and the others, started once it is ready, find its sizes in the cache
        self.staggered = self.endpoints is not None and settings.batching.calibrate != "off"

    # signals

    def on_signal(self, signum: int, _frame: FrameType | None = None) -> None:
        """A signal for the group: the loop passes it on (at most twice) at its next turn."""
        self.signals += 1
        if self.signals == 1:
            log.info(
                "worker group stopping",
                extra={"signal": signal.Signals(signum).name, "processes": self.processes},
            )

    def _pass_on(self) -> None:
        """Pass on one signal received (the first two count): one a turn, since two sent at
        once reach a process as one."""
        if self._passed_on >= min(self.signals, 2):
            return
        self._passed_on += 1
        if self._stop_by is None:
            grace_s = self.settings.runtime.shutdown_grace_s
            self._stop_by = self.clock() + grace_s + KILL_MARGIN_S
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)

    # the loop

    def _spawn(self, index: int) -> None:
        env = process_env(self.settings, self.processes, index, group=self.name)
        proc = self.spawn(index, env)
        self.procs.append(proc)
        log.info(
            "worker process started",
            extra={"process_index": index, "pid": proc.pid, "worker": env["STREAMER_WORKER_NAME"]},
        )

    def start(self) -> None:
        log.info(
            "worker group starting",
            extra={
                "group": self.name,
                "processes": self.processes,
                "metrics_port": self.settings.runtime.metrics_port or None,
                "staggered": self.staggered,
            },
        )
        for index in range(1 if self.staggered else self.processes):
            self._spawn(index)

    def _start_the_rest(self) -> None:
        """Staggered: the other processes once the first is ready (its models calibrated)."""
        if len(self.procs) == self.processes or self.signals or self.failed is not None:
            return
        if self.endpoints is None or not self.endpoints.passes(0, "/readyz"):
            return
        log.info("the first worker process is ready; starting the others")
        for index in range(len(self.procs), self.processes):
            self._spawn(index)

    def _end_started(self) -> None:
        """A start that failed part way: end the processes it had started."""
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def running(self, index: int) -> bool:
        return index < len(self.procs) and self.procs[index].poll() is None

    def step(self) -> bool:
        """One turn of the loop: pass signals on, notice a process that ended, kill what is
        past the deadline. False once every process has ended."""
        if self.failed is None and self.signals == 0:
            for index, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    self.failed = f"process {index} ended with {proc.returncode}"
                    log.error(
                        "a worker process ended by itself; stopping the group",
                        extra={"process_index": index, "exit_code": proc.returncode},
                    )
                    self.signals = 1
                    break
        self._pass_on()
        self._start_the_rest()
        if self._stop_by is not None and self.clock() >= self._stop_by:
            for index, proc in enumerate(self.procs):
                if proc.poll() is None:
                    log.error(
                        "a worker process outlived the grace; killing it",
                        extra={"process_index": index},
                    )
                    proc.kill()
                    proc.wait()
                    self.killed.add(index)
        return any(proc.poll() is None for proc in self.procs)

    def exit_code(self) -> int:
        if self.failed is not None:
            return EXIT_FAILED
        codes = [proc.poll() for proc in self.procs]
        return group_exit_code(codes, killed=self.killed, signalled=self._passed_on > 0)

    def run(self) -> int:
        """Start the processes, serve the group's endpoints, wait until all have ended;
        returns the group's exit code."""
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        server = None
        try:
            try:
                self.start()
            except BaseException:
                self._end_started()
                raise
            if self.endpoints is not None:
                server = serve(self.settings.runtime.metrics_port, self.endpoints)
            while self.step():
                time.sleep(self.poll_s)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if server is not None:
                server.shutdown()
                server.server_close()
            if self.endpoints is not None:
                self.endpoints.close()
        code = self.exit_code()
        log.info(
            "worker group stopped",
            extra={
                "exit_code": code,
                "codes": [proc.returncode for proc in self.procs],
                "killed": sorted(self.killed),
                "cause": self.failed or "a signal",
            },
        )
        return code
