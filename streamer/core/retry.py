"""Retrying work that a dependency outage interrupts: never drop it, never spin on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streamer.core.errors import TransientError

__all__ = ["retry_blocking", "retry_transient"]

log = logging.getLogger(__name__)
T = TypeVar("T")


async def retry_transient(
    what: str,
    fn: Callable[[], Awaitable[T]],
    *,
    max_pause_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``fn`` until no :class:`TransientError` comes back. Pauses double from 0.5 s up to
    ``max_pause_s``; a dependency that says when to come back (``retry_after_s``) is not asked
    again before then."""
    backoff, attempt = 0.5, 0
    while True:
        try:
            return await fn()
        except TransientError as exc:
            attempt += 1
            pause = min(max(backoff, exc.retry_after_s), max_pause_s)
            log.warning("%s: %s; attempt %d, retrying in %.1fs", what, exc, attempt, pause)
            await sleep(pause)
            backoff = min(backoff * 2, max_pause_s)


async def retry_blocking(what: str, fn: Callable[[], T], *, max_pause_s: float = 30.0) -> T:
    """Run blocking work (a store call, say) in a thread, retrying while its dependency is
    unavailable."""
    loop = asyncio.get_running_loop()
    return await retry_transient(
        what, lambda: loop.run_in_executor(None, fn), max_pause_s=max_pause_s
    )
