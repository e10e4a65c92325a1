"""The ingest agent's loop helpers: stop taking batches when told, never half-submit one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from streamer.ingest.agent import _unless, _until


async def _endless() -> AsyncIterator[Sequence[Any]]:
    n = 0
    while True:
        await asyncio.sleep(0.01)
        n += 1
        yield [n]


def test_until_stops_when_an_event_is_set() -> None:
    async def scenario() -> list[Sequence[Any]]:
        failed, stopping = asyncio.Event(), asyncio.Event()
        seen = []
        async for batch in _until(_endless(), failed, stopping):
            seen.append(batch)
            if len(seen) == 3:
                asyncio.get_running_loop().call_soon(stopping.set)
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == [[1], [2], [3]]


def test_until_stops_while_waiting_for_a_batch() -> None:
    async def never() -> AsyncIterator[Sequence[Any]]:
        await asyncio.Event().wait()
        yield []

    async def scenario() -> int:
        failed = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, failed.set)
        return len([b async for b in _until(never(), failed)])

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == 0


def test_unless_gives_up_waiting_when_stopping() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        stop, slots = asyncio.Event(), asyncio.Semaphore(0)  # no room: the wait would block
        acquired = []

        async def submit() -> None:
            await slots.acquire()
            acquired.append(1)

        asyncio.get_running_loop().call_later(0.05, stop.set)
        done = await _unless(stop, submit())
        ready = await _unless(asyncio.Event(), asyncio.sleep(0))
        return done, ready, len(acquired)

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == (False, True, 0)
