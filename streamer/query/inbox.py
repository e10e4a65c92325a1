"""The search agent's inbox: requests fetched and not yet answered, handed out in batches.

Fetching and answering run apart: the agent's reader puts every record into the inbox the
moment its consumer hands it over (stamping when), while the answering loop takes what has
gathered. A request that arrives while a search runs therefore waits in the inbox, not on the
broker, and joins the next batch; its hops show that wait as queueing instead of transport.

A lone request is taken at once: nothing else is waiting, so holding it for the coalescing
window only adds the window to its latency (2 ms at every answer of an idle worker). When
several are waiting, a burst is arriving, and the window gives its stragglers the chance to
join the same search.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

__all__ = ["Arrival", "Inbox"]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request record and when the worker got it (wall clock, ms since the epoch)."""

    record: ConsumerRecord
    received_ms: float


class Inbox:
    def __init__(self, *, max_batch: int, window_ms: int, capacity: int) -> None:
        if max_batch < 1 or capacity < max_batch:
            raise ValueError(f"need 1 <= max_batch ({max_batch}) <= capacity ({capacity})")
        self.max_batch = max_batch
        self.window_ms = window_ms
        self.capacity = capacity
        self._waiting: deque[Arrival] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._waiting)

    async def put(self, arrivals: Sequence[Arrival]) -> None:
        """Add requests; waits while the inbox is full, so fetching pauses (and the broker
        keeps the backlog) while the worker catches up."""
        while len(self._waiting) >= self.capacity:
            self._room.clear()
            await self._room.wait()
        self._waiting.extend(arrivals)
        if arrivals:
            self._arrived.set()

    async def take(self) -> list[Arrival]:
        """The next batch: every request waiting, up to ``max_batch``; see the module's
        docstring for when it waits the coalescing window."""
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        if 1 < len(self._waiting) < self.max_batch and self.window_ms > 0:
            await self._gather(self.window_ms / 1000)
        batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
        if len(self._waiting) < self.capacity:
            self._room.set()
        return batch

    async def _gather(self, window_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_s
        while len(self._waiting) < self.max_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
