"""A bounded window of micro-batches in flight, ordered where order matters.

The ingest agent keeps up to ``limit`` batches in the pipeline at once, so one batch is
fetched and decoded while the model works on another. Two rules keep that as correct as one
batch at a time:

- a batch that shares a key (an asset id) with an earlier batch still in flight starts only
  once that batch is processed, so its dedupe sees the earlier write and writes land in
  message order;
- batches finish (dead letters published, offsets acknowledged) in the order they were taken,
  and once a batch has failed, no later batch finishes: the error stops the agent and nothing
  after it is acknowledged.

``submit`` blocks while the window is full: that is the backpressure that stops the consumer
from taking more than the pipeline can hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["InFlightWindow"]

T = TypeVar("T")


@dataclass(eq=False)
class _Batch:
    keys: frozenset[str]
    processed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False


class InFlightWindow(Generic[T]):
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._batches: list[_Batch] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self.failed = asyncio.Event()  # set when a batch failed: its owner should stop

    @property
    def in_flight(self) -> int:
        return len(self._batches)

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def submit(
        self,
        keys: Collection[str],
        process: Callable[[], Awaitable[T]],
        finish: Callable[[T], Awaitable[None]],
    ) -> None:
        """Start ``process`` (after earlier batches that share a key), then ``finish`` with its
        result (after every earlier batch finished). Returns once the batch is in the window;
        raises the error of a batch that failed."""
        self.raise_if_failed()
        await self._slots.acquire()
        try:
            self.raise_if_failed()
        except BaseException:
            self._slots.release()
            raise
        batch = _Batch(frozenset(keys))
        overlapping = [b for b in self._batches if b.keys & batch.keys]
        previous = self._batches[-1] if self._batches else None
        self._batches.append(batch)
        task = asyncio.create_task(self._run(batch, overlapping, previous, process, finish))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        batch: _Batch,
        overlapping: list[_Batch],
        previous: _Batch | None,
        process: Callable[[], Awaitable[T]],
        finish: Callable[[T], Awaitable[None]],
    ) -> None:
        try:
            for earlier in overlapping:
                await earlier.processed.wait()
            result = await process()
            batch.processed.set()
            if previous is not None:
                await previous.finished.wait()
                if previous.failed:
                    raise _EarlierBatchFailed()
            await finish(result)
        except _EarlierBatchFailed:
            batch.failed = True
        except BaseException as exc:
            batch.failed = True
            if self._error is None:
                self._error = exc
            self.failed.set()
        finally:
            batch.processed.set()
            batch.finished.set()
            self._batches.remove(batch)
            self._slots.release()

    async def drain(self) -> None:
        """Wait for every batch in flight; raise the first error."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.raise_if_failed()

    async def idle(self) -> None:
        """Wait until no batch is in flight; unlike :meth:`drain`, cancelling this wait leaves
        the batches running, and their errors are not raised here."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def cancel(self) -> None:
        """Stop the batches in flight (their offsets stay unacknowledged)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


class _EarlierBatchFailed(Exception):
    """An earlier batch failed, so this one must not acknowledge past it."""
