"""How a worker stops: within ``STREAMER_SHUTDOWN_GRACE_S`` of SIGTERM or SIGINT, in any state.

On the first signal the worker stops taking batches and gives the ones in flight most of the
grace to finish (their dead letters delivered, their offsets acknowledged); then faust stops,
which commits what was acknowledged and leaves the consumer group. A watchdog thread ends the
process when the grace runs out, whatever is stuck: a broker that is gone makes the final
commit and the group's leave wait forever, and a batch keeps retrying while Milvus or Redis is
away. Ending there loses nothing: an offset is committed only after its batch was acknowledged,
so what was not is delivered again (to this worker restarted, or to another), and writes are
upserts by id, so a repeat changes nothing. A second signal ends the process at once, the same
way.

One log line (``worker stopped``) and the exit code say how it ended:

====  =====================================================================================
0     stopped cleanly: every batch in flight finished, the offsets committed
3     the grace ran out (or a second signal came): unfinished work is left for redelivery
1     the worker failed (an agent crashed); the error is logged above
====  =====================================================================================

After that line the process ends at once (:func:`end_process`), without the interpreter's own
teardown: the threads native libraries keep (gRPC's, librdkafka's, torch's, ffmpeg's) do not
always survive it, and a clean stop then ended as ``abort`` (134, "terminate called without an
active exception") or ``SIGSEGV`` (139) now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

__all__ = ["EXIT_CLEAN", "EXIT_FAILED", "EXIT_FORCED", "Drainable", "Shutdown", "end_process"]

log = logging.getLogger(__name__)

EXIT_CLEAN: Final = 0
EXIT_FAILED: Final = 1
EXIT_FORCED: Final = 3
# what is kept of the grace for faust's own stop (commit, leave the group, close the clients)
STOP_RESERVE_S: Final = 5.0
# the watchdog fires this much before the grace ends, so the process is gone within it
EXIT_MARGIN_S: Final = 0.25


class Drainable(Protocol):
    """Work in flight that can be waited for: an agent's window of batches."""

    @property
    def in_flight(self) -> int: ...

    async def idle(self) -> None: ...


class Shutdown:
    """The stop of one worker process: the signal, the drain, the watchdog and the last line.

    The ingest agent registers its window of batches with :meth:`watch` and stops taking new
    ones once :attr:`draining` is set; the faust worker calls :meth:`begin` on a signal, awaits
    :meth:`drain`, then stops faust; :meth:`finish` writes the last line once.
    """

    def __init__(
        self,
        grace_s: float,
        *,
        exit: Callable[[int], Any] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_s = grace_s
        self.signal: str | None = None
        self.draining = asyncio.Event()
        self._exit = exit
        self._clock = clock
        self._since: float | None = None
        self._windows: list[Drainable] = []
        self._watchdog: threading.Timer | None = None
        self._lock = threading.Lock()
        self._code: int | None = None  # set by the last line
        self.left_unfinished = 0  # batches the drain gave up on
        self.phase = "running"  # then: draining, stopping faust
        self._on_begin: list[Callable[[], Any]] = []

    @property
    def stopping(self) -> bool:
        return self.signal is not None

    def watch(self, window: Drainable) -> None:
        self._windows.append(window)

    def on_begin(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` when stopping begins, in a thread of its own (it may block on a
        server that is gone; nothing waits for it): e.g. withdraw the worker's presence."""
        self._on_begin.append(callback)

    def in_flight(self) -> int:
        return sum(w.in_flight for w in self._windows)

    def elapsed_s(self) -> float:
        return 0.0 if self._since is None else self._clock() - self._since

    def begin(self, signal: str) -> bool:
        """Start stopping (returns True), or, on a second signal, end the process now."""
        if self.stopping:
            log.warning("second signal: stopping now", extra={"signal": signal})
            self.expire(reason=f"a second {signal}")
            return False
        self.signal, self._since = signal, self._clock()
        self.phase = "draining"
        log.info(
            "worker stopping",
            extra={
                "signal": signal,
                "grace_s": self.grace_s,
                "batches_in_flight": self.in_flight(),
            },
        )
        self._watchdog = threading.Timer(
            max(0.0, self.grace_s - EXIT_MARGIN_S), self.expire, kwargs={"reason": "grace ran out"}
        )
        self._watchdog.daemon = True
        self._watchdog.name = "shutdown-watchdog"
        self._watchdog.start()
        for callback in self._on_begin:
            threading.Thread(target=callback, name="shutdown-begin", daemon=True).start()
        return True

    async def drain(self) -> bool:
        """Stop taking batches and wait for those in flight, keeping a part of the grace for
        faust's own stop; returns whether every batch finished."""
        self.draining.set()
        self.phase = "draining"
        budget = max(0.0, self.grace_s - min(STOP_RESERVE_S, self.grace_s / 3) - self.elapsed_s())
        waiting = [asyncio.ensure_future(w.idle()) for w in self._windows]
        if not waiting:
            return True
        # the batches that do not finish in time keep running (a write retrying may still
        # land): cancelling them would only turn a stop into a crash
        _, pending = await asyncio.wait(waiting, timeout=budget)
        for task in pending:
            task.cancel()
        finished = not pending and self.in_flight() == 0
        if not finished:
            self.left_unfinished = max(1, self.in_flight())
            log.warning(
                "batches left unacknowledged for redelivery",
                extra={"batches": self.in_flight(), "waited_s": round(budget, 1)},
            )
        return finished

    def finish(self, how: str, code: int, **fields: Any) -> int:
        """Write the last line; returns the code of the line written (the first call's: a line
        is written once). The watchdog stays armed: tearing down can hang too (a thread stuck
        in a call to a server that is gone), and then it ends the process with this code."""
        with self._lock:
            if self._code is not None:
                return self._code
            self._code = code
        level = logging.INFO if code == EXIT_CLEAN else logging.WARNING
        if code == EXIT_FAILED:
            level = logging.ERROR
        log.log(
            level,
            "worker stopped",
            extra={
                "how": how,
                "exit_code": code,
                "signal": self.signal,
                "seconds": round(self.elapsed_s(), 2),
                **fields,
            },
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        return code

    def expire(self, *, reason: str) -> None:
        """End the process now (from the watchdog thread, or on a second signal), with the code
        of the last line when it was written already (a clean stop slow to tear down)."""
        unfinished = self.in_flight()
        code = self.finish(
            f"{reason}: {unfinished} batches left for redelivery" if unfinished else reason,
            EXIT_FORCED,
            batches_unacknowledged=unfinished,
            phase=self.phase,
        )
        self._exit(code)


def end_process(code: int, *, exit: Callable[[int], Any] = os._exit) -> None:
    """End the process with ``code`` once the logs and the standard streams are flushed,
    skipping the interpreter's teardown (see the module's docstring). What must outlive the
    process is done before: offsets committed, producers flushed, the last line written."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        # a closed or broken pipe: nothing more can be said
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    exit(code)
