"""The faust app: the ingest agent on ``media.uploads`` and its dead-letter topic.

The agent takes micro-batches without acknowledging them (``noack_take``), runs them through
the :class:`~streamer.ingest.pipeline.IngestPipeline`, publishes dead letters and waits for their
delivery, and only then acknowledges the events, so an offset is committed only after the
vector store and the dead-letter topic both have what the batch produced. (``take()`` would
acknowledge a batch even when its processing raised.) A crashed agent stops the worker instead
of leaving a process that looks alive and commits nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
from mode import CrashingSupervisor

from streamer.config.connections import faust_credentials
from streamer.core.errors import TransientError
from streamer.worker.transport import StreamerApp
from streamer.ingest.inflight import InFlightWindow
from streamer.ingest.pipeline import (
    IngestPipeline,
    IngestReport,
    Record,
    attempts_header,
    retry_transient,
)
from streamer.core.messages import DeadLetter
from streamer.core.metrics import Health, Metrics
from streamer.query.agent import QueryAgent
from streamer.query.service import SearchService
from streamer.config.settings import Settings
from topologies.base import Topology

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def batch_window(
    topologies: Sequence[Topology], settings: Settings, model_batch: Callable[[Topology], int]
) -> tuple[int, float]:
    """The stream's take size and wait: room for the largest batch a topology's model takes
    (declared or calibrated), and the shortest wait."""
    policies = [
        t.batch.overridden(settings.batching.max_batch_size, settings.batching.max_wait_ms)
        for t in topologies
    ]
    size = max([p.max_batch_size for p in policies] + [model_batch(t) for t in topologies])
    wait_s = min(p.max_wait_ms for p in policies) / 1000
    return size, max(wait_s, 0.001)


AGENTS = ("ingest", "search")


def create_app(
    settings: Settings,
    topologies: Sequence[Topology],
    pipeline: IngestPipeline | None,
    searcher: SearchService | None = None,
    *,
    metrics: Metrics | None = None,
    health: Health | None = None,
) -> faust.App:
    """The app with the ingest agent (when ``pipeline`` is given) and the search agent (when
    ``searcher`` is)."""
    kafka = settings.kafka
    datadir = Path(settings.stack.state_dir) / "faust"
    app = StreamerApp(
        kafka.app_id,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        autodiscover=False,
        datadir=str(datadir),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_s,
        broker_rebalance_timeout=kafka.rebalance_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        broker_commit_interval=1.0,
        producer_acks=-1,
        web_enabled=False,
        broker_credentials=faust_credentials(kafka),
    )
    uploads = app.topic(kafka.uploads_topic, partitions=kafka.partitions)
    deadletters = app.topic(kafka.deadletter_topic, partitions=kafka.partitions)
    take_size, take_wait_s = batch_window(
        topologies, settings, pipeline.chunk_size if pipeline is not None else lambda t: 1
    )
    max_pause_s = settings.runtime.sink_retry_max_s

    async def publish_dead_letter(letter: DeadLetter) -> None:
        await send_until_delivered(
            deadletters,
            key=letter.key,
            value=letter.value,
            headers=letter.headers(),
            what="dead letter",
            max_pause_s=max_pause_s,
        )

    metrics = metrics or Metrics()
    health = health or Health(stall_s=settings.runtime.stall_s)
    if pipeline is not None:
        _ingest_agent(
            app,
            uploads,
            pipeline,
            publish_dead_letter,
            take_size,
            take_wait_s,
            settings.batching.max_in_flight,
            metrics,
            health,
        )
    if searcher is not None:
        app.add_dependency(QueryAgent(settings, searcher, metrics=metrics, loop=app.loop))

    @app.task
    async def mark_ready() -> None:
        health.ready = True

    return app


async def send_until_delivered(
    topic: faust.TopicT,
    *,
    key: bytes | None,
    value: bytes,
    what: str,
    max_pause_s: float,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send and wait for the broker's acknowledgement, retrying while the broker is away."""

    async def attempt() -> Any:
        try:
            return await (await topic.send(key=key, value=value, headers=headers))
        except Exception as exc:  # the broker client raises many kinds
            raise TransientError("kafka", f"{what} not delivered: {exc}") from exc

    await retry_transient(what, attempt, max_pause_s=max_pause_s)


def _ingest_agent(
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
