"""The ingest agent: ``media.uploads`` in micro-batches through the ingest pipeline.

The agent takes micro-batches without acknowledging them (``noack_take``), runs them through
the :class:`~streamer.ingest.pipeline.IngestPipeline` in a bounded window of batches in flight,
publishes dead letters and waits for their delivery, and only then acknowledges the events, so
an offset is committed only after the vector store and the dead-letter topic both have what
the batch produced. (``take()`` would acknowledge a batch even when its processing raised.)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import faust
from mode import CrashingSupervisor

from streamer.core.messages import DeadLetter
from streamer.core.metrics import Health, Metrics
from streamer.ingest.inflight import InFlightWindow
from streamer.ingest.pipeline import IngestPipeline
from streamer.ingest.records import IngestReport, Record, attempts_header

__all__ = ["ingest_agent"]

log = logging.getLogger(__name__)


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
) -> None:
    @app.agent(uploads, name="ingest", supervisor_strategy=CrashingSupervisor)
    async def ingest(stream: faust.StreamT) -> None:
        window: InFlightWindow[IngestReport] = InFlightWindow(max_in_flight)

        async def finish(
            events: Sequence[Any], records: Sequence[Record], token: int, report: IngestReport
        ) -> None:
            for letter in report.dead_letters:
                await publish_dead_letter(letter)
            for event in events:
                await stream.ack(event)
            health.finished(token)
            metrics.last_commit.set_to_current_time()
            metrics.batch("ingest", len(records), report.counts())
            metrics.stages(report.timings)
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

        # noack_take is on faust's Stream, not on the StreamT protocol the decorator declares.
        batches = stream.noack_take(take_size, within=take_wait_s)  # type: ignore[attr-defined]
        async for events in _until_failed(batches, window.failed):
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
            await window.submit(
                _keys(records),
                functools.partial(pipeline.process, records),
                functools.partial(finish, events, records, token),
            )
        window.raise_if_failed()


async def _until_failed(
    batches: AsyncIterator[list[Any]], failed: asyncio.Event
) -> AsyncIterator[list[Any]]:
    """The batches of the stream, until ``failed`` is set (then the caller raises)."""
    iterator = batches.__aiter__()
    stop = asyncio.ensure_future(failed.wait())
    try:
        while True:
            following = asyncio.ensure_future(iterator.__anext__())
            await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                batch = following.result()
            except StopAsyncIteration:
                return
            yield batch
    finally:
        stop.cancel()


def _keys(records: Sequence[Record]) -> set[str]:
    """The Kafka keys (asset ids) of a batch: batches sharing one are ordered."""
    return {r.key.decode("utf-8", "replace") for r in records if r.key is not None}


def _last_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
    return last
