"""Retrying work that a dependency outage interrupts: never drop it, never spin on it.

An outage is said once when it begins, then as a summary every ``report_every_s`` (how long,
how many attempts), and once more when the work goes through: a few lines however long the
dependency is away, not one per attempt. Each line carries ``dependency`` and ``outage``
(``began``, ``ongoing``, ``over``) as fields, by which the log handler keeps concurrent callers
from repeating each other (:class:`streamer.config.logs.OutageDigest`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streamer.core.errors import TransientError

__all__ = ["REPORT_EVERY_S", "retry_blocking", "retry_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how often an outage that goes on is reported again (the same as the log handler's window)
REPORT_EVERY_S = 30.0


async def retry_transient(
    what: str,
    fn: Callable[[], Awaitable[T]],
    *,
    max_pause_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    report_every_s: float = REPORT_EVERY_S,
) -> T:
    """Await ``fn`` until no :class:`TransientError` comes back. Pauses double from 0.5 s up to
    ``max_pause_s``; a dependency that says when to come back (``retry_after_s``) is not asked
    again before then. The outage is logged when it begins, every ``report_every_s`` of
    ``clock`` while it lasts, and when ``fn`` goes through."""
    backoff, attempts = 0.5, 0
    began = reported = 0.0
    dependency = ""
    while True:
        try:
            result = await fn()
        except TransientError as exc:
            now, attempts, dependency = clock(), attempts + 1, exc.dependency
            if attempts == 1:
                began = reported = now
                log.warning(
                    "%s: %s; retrying until it is back",
                    what,
                    exc,
                    extra={"dependency": dependency, "outage": "began"},
                )
            elif now - reported >= report_every_s:
                reported = now
                log.warning(
                    "%s: %s unavailable for %.0f s, %d attempts (last: %s)",
                    what,
                    dependency,
                    now - began,
                    attempts,
                    _cause(exc),
                    extra={"dependency": dependency, "outage": "ongoing"},
                )
            pause = min(max(backoff, exc.retry_after_s), max_pause_s)
            await sleep(pause)
            backoff = min(backoff * 2, max_pause_s)
        else:
            if attempts:
                log.info(
                    "%s: %s back after %.0f s, %d retries",
                    what,
                    dependency,
                    clock() - began,
                    attempts,
                    extra={"dependency": dependency, "outage": "over"},
                )
            return result


def _cause(exc: TransientError) -> str:
    """The error without the "<dependency> unavailable: " its message begins with."""
    return str(exc).removeprefix(f"{exc.dependency} unavailable: ")


async def retry_blocking(what: str, fn: Callable[[], T], *, max_pause_s: float = 30.0) -> T:
    """Run blocking work (a store call, say) in a thread, retrying while its dependency is
    unavailable."""
    loop = asyncio.get_running_loop()
    return await retry_transient(
        what, lambda: loop.run_in_executor(None, fn), max_pause_s=max_pause_s
    )
