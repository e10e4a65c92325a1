"""The ingest agent: ``media.uploads`` in micro-batches through the ingest pipeline.

The agent takes micro-batches without acknowledging them (``noack_take``), runs them through
the :class:`~streamer.ingest.pipeline.IngestPipeline` in a bounded window of batches in flight,
publishes dead letters and label events and waits for their delivery, and only then
acknowledges the events, so an offset is committed only after the vector store, the
dead-letter topic and the labels topic all have what the batch produced. (``take()`` would
acknowledge a batch even when its processing raised.)

When the worker stops (:mod:`streamer.worker.shutdown`), the agent takes no more batches and
lets the ones in flight finish: the shutdown waits on its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import faust
from mode import CrashingSupervisor

from streamer.core.messages import DeadLetter, LabelEvent
from streamer.core.metrics import Health, Metrics
from streamer.ingest.inflight import InFlightWindow
from streamer.ingest.pipeline import IngestPipeline
from streamer.ingest.records import IngestReport, Record, attempts_header

__all__ = ["ingest_agent"]

log = logging.getLogger(__name__)


class Stopping(Protocol):
    """The worker's stop, as the agent sees it (:class:`streamer.worker.shutdown.Shutdown`):
    set ``draining`` when no more batches should be taken; ``watch`` the window to wait on."""

    draining: asyncio.Event

    def watch(self, window: InFlightWindow[Any]) -> None: ...


def ingest_agent(
    app: faust.App,
    uploads: faust.TopicT,
    pipeline: IngestPipeline,
    publish_dead_letter: Callable[[DeadLetter], Awaitable[None]],
    take_size: int,
    take_wait_s: float,
    max_in_flight: int,
    metrics: Metrics,
    health: Health,
    shutdown: Stopping | None = None,
    publish_labels: Callable[[Sequence[LabelEvent]], Awaitable[None]] | None = None,
) -> None:
    stopping = shutdown.draining if shutdown is not None else asyncio.Event()

    @app.agent(uploads, name="ingest", supervisor_strategy=CrashingSupervisor)
    async def ingest(agent_stream: faust.StreamT) -> None:
        # Acks are ours alone, on this stream: when ``noack_take`` below is closed (the worker
        # stops, or a batch failed) it turns the stream's acks back on, and the stream, still
        # consumed in the background, would ack every event it then passes, processed or
        # not, and the next commit would skip them. A ``noack`` stream never turns them on.
        # (noack and noack_take are on faust's Stream, not on the StreamT the decorator declares)
        stream = cast(faust.Stream[Any], cast(faust.Stream[Any], agent_stream).noack())
        window: InFlightWindow[IngestReport] = InFlightWindow(max_in_flight)
        if shutdown is not None:
            shutdown.watch(window)

        async def finish(
            events: Sequence[Any], records: Sequence[Record], token: int, report: IngestReport
        ) -> None:
            for letter in report.dead_letters:
                await publish_dead_letter(letter)
            if report.labels and publish_labels is not None:
                await publish_labels(report.labels)
            for event in events:
                await stream.ack(event)
            health.finished(token)
            metrics.last_commit.set_to_current_time()
            metrics.batch("ingest", len(records), report.counts())
            metrics.stages(report.timings, report.busy)
            for letter in report.dead_letters:
                metrics.dead_letters.labels(letter.stage).inc()
            last = _last_offsets(records)
            for (topic, partition), offset in last.items():
                highwater = app.consumer.highwater((topic, partition))  # type: ignore[arg-type]
                if highwater is not None:
                    metrics.lag.labels(topic, str(partition)).set(max(0, highwater - offset - 1))
            log.info(
                "batch done",
                extra={
                    "counts": report.counts(),
                    "offsets": {f"{t}[{p}]": offset for (t, p), offset in last.items()},
                    "seconds": {k: round(v, 4) for k, v in report.timings.items()},
                },
            )

        batches = stream.noack_take(take_size, within=take_wait_s)
        async for events in _until(batches, window.failed, stopping):
            if stopping.is_set():
                break  # taken while stopping: left unacknowledged, delivered again later
            records = [
                Record(
                    value=e.value,
                    key=e.key,
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    attempts=attempts_header(e.message.headers),
                )
                for e in events
            ]
            token = health.started()
            submitted = await _unless(
                stopping,
                window.submit(
                    _keys(records),
                    functools.partial(pipeline.process, records),
                    functools.partial(finish, events, records, token),
                ),
            )
            if not submitted:
                health.finished(token)
                break  # no room before the stop: left unacknowledged, delivered again later
        window.raise_if_failed()


async def _until(
    batches: AsyncIterator[Sequence[Any]], *events: asyncio.Event
) -> AsyncIterator[Sequence[Any]]:
    """The batches of the stream, until one of ``events`` is set: a batch failed (then the
    caller raises) or the worker is stopping."""
    iterator = batches.__aiter__()
    stops = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        while True:
            following = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait({following, *stops}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                batch = following.result()
            except StopAsyncIteration:
                return
            yield batch
    finally:
        for stop in stops:
            stop.cancel()


async def _unless(stop: asyncio.Event, work: Awaitable[None]) -> bool:
    """Await ``work`` unless ``stop`` is set first (then ``work`` is cancelled); returns
    whether it was done."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


def _keys(records: Sequence[Record]) -> set[str]:
    """The Kafka keys (asset ids) of a batch: batches sharing one are ordered."""
    return {r.key.decode("utf-8", "replace") for r in records if r.key is not None}


def _last_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
    return last
