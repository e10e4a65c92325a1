"""The search agent's inbox: a lone request goes at once, a burst waits the window."""

import asyncio
import time

import pytest
from aiokafka.structs import ConsumerRecord

from streamer.query.inbox import Arrival, Inbox


def arrivals(*offsets: int) -> list[Arrival]:
    return [
        Arrival(
            ConsumerRecord("search.requests", 0, offset, 0, 0, b"k", b"v", None, 1, 1, []),
            received_ms=float(offset),
        )
        for offset in offsets
    ]


def offsets(batch: list[Arrival]) -> list[int]:
    return [a.record.offset for a in batch]


def test_a_lone_request_does_not_wait_the_window() -> None:
    async def run() -> tuple[list[Arrival], float]:
        inbox = Inbox(max_batch=8, window_ms=1000, capacity=32)
        await inbox.put(arrivals(0))
        started = time.perf_counter()
        return await inbox.take(), time.perf_counter() - started

    batch, waited_s = asyncio.run(run())
    assert offsets(batch) == [0]
    assert waited_s < 0.5


def test_a_burst_waits_the_window_for_its_stragglers() -> None:
    async def run() -> list[Arrival]:
        inbox = Inbox(max_batch=8, window_ms=300, capacity=32)
        await inbox.put(arrivals(0, 1))

        async def straggler() -> None:
            await asyncio.sleep(0.02)
            await inbox.put(arrivals(2))

        late = asyncio.create_task(straggler())
        batch = await inbox.take()
        await late
        return batch

    assert offsets(asyncio.run(run())) == [0, 1, 2]


def test_a_full_batch_goes_without_waiting() -> None:
    async def run() -> tuple[list[Arrival], list[Arrival], float]:
        inbox = Inbox(max_batch=3, window_ms=1000, capacity=8)
        await inbox.put(arrivals(0, 1, 2, 3))
        started = time.perf_counter()
        first = await inbox.take()
        return first, await inbox.take(), time.perf_counter() - started

    first, second, waited_s = asyncio.run(run())
    assert offsets(first) == [0, 1, 2]
    assert offsets(second) == [3]  # alone now: at once too
    assert waited_s < 0.5


def test_take_waits_for_the_first_request() -> None:
    async def run() -> list[Arrival]:
        inbox = Inbox(max_batch=4, window_ms=0, capacity=4)
        taking = asyncio.create_task(inbox.take())
        await asyncio.sleep(0.01)
        assert not taking.done()
        await inbox.put(arrivals(5))
        return await asyncio.wait_for(taking, 1)

    assert offsets(asyncio.run(run())) == [5]


def test_a_full_inbox_holds_the_reader_back() -> None:
    async def run() -> None:
        inbox = Inbox(max_batch=2, window_ms=0, capacity=2)
        await inbox.put(arrivals(0, 1))
        putting = asyncio.create_task(inbox.put(arrivals(2)))
        await asyncio.sleep(0.01)
        assert not putting.done() and len(inbox) == 2
        assert offsets(await inbox.take()) == [0, 1]
        await asyncio.wait_for(putting, 1)
        assert offsets(await inbox.take()) == [2]

    asyncio.run(run())


def test_capacity_must_hold_a_batch() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Inbox(max_batch=8, window_ms=2, capacity=4)
