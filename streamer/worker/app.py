"""The faust app of a worker: the ingest agent on ``media.uploads`` with its dead-letter and
labels topics, and the search agent. A crashed agent stops the worker instead of leaving a
process that looks alive and commits nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from streamer.config.connections import faust_credentials
from streamer.config.settings import KafkaSettings, Settings
from streamer.core.errors import ConfigError, TransientError
from streamer.core.messages import DeadLetter, LabelEvent
from streamer.core.metrics import Health, Metrics
from streamer.core.retry import retry_transient
from streamer.ingest.agent import ingest_agent
from streamer.ingest.pipeline import IngestPipeline
from streamer.query.agent import QueryAgent
from streamer.query.service import SearchService
from streamer.runner.plans import Plans
from streamer.runner.topology import Topology
from streamer.worker.shutdown import Shutdown
from streamer.worker.sizing import ModelSpeed, PipelineSize, size_pipeline
from streamer.worker.transport import StreamerApp

__all__ = ["AGENTS", "batch_window", "create_app", "faust_app_id", "faust_datadir"]

log = logging.getLogger(__name__)


def batch_window(
    topologies: Sequence[Topology], settings: Settings, plans: Plans | None
) -> PipelineSize:
    """The stream's take size, wait and window: sized to each topology's model speed
    (calibrated) and batch size (declared, calibrated or pinned); see
    :mod:`streamer.worker.sizing`."""
    batching = settings.batching
    models: list[ModelSpeed] = []
    device = "cpu"
    for topology in topologies:
        policy = topology.batch_policy().overridden(batching.max_batch_size, batching.max_wait_ms)
        size, speed = policy.max_batch_size, None
        if plans is not None:
            plan = plans.get(topology)
            device = plan.device if device == "cpu" else device
            measured = [(plans.batch_size(plan, s), plans.speed(plan, s)) for s in plan.models]
            timed = [m for m in measured if m[1] is not None]
            size, speed = (timed or measured or [(size, None)])[0]
        models.append(ModelSpeed(topology.name, size, speed, policy.max_wait_ms))
    return size_pipeline(models, device=device, batching=batching)


AGENTS = ("ingest", "search")


def faust_app_id(kafka: KafkaSettings, *, ingest: bool) -> str:
    """The faust app id, which is also the consumer group of its leader topic.

    A worker without the ingest agent gets a group of its own (``<app_id>-query``), so starting
    or scaling search workers never rebalances the ingest group.
    """
    return kafka.app_id if ingest else f"{kafka.app_id}-query"


def faust_datadir(settings: Settings) -> Path:
    """faust's data folder under the state folder, created with its parents."""
    datadir = settings.stack.state_dir / "faust"
    try:
        datadir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"worker: cannot create faust's data folder {datadir}: {exc.strerror or exc}; "
            "set STREAMER_STACK_STATE_DIR to a writable folder (the image uses /var/lib/streamer)"
        ) from exc
    return datadir


def create_app(
    settings: Settings,
    topologies: Sequence[Topology],
    pipeline: IngestPipeline | None,
    searcher: SearchService | None = None,
    *,
    metrics: Metrics | None = None,
    health: Health | None = None,
    shutdown: Shutdown | None = None,
) -> faust.App:
    """The app with the ingest agent (when ``pipeline`` is given) and the search agent (when
    ``searcher`` is)."""
    kafka = settings.kafka
    app = StreamerApp(
        faust_app_id(kafka, ingest=pipeline is not None),
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        autodiscover=False,
        datadir=str(faust_datadir(settings)),
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
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
    labels = app.topic(kafka.labels_topic, partitions=kafka.partitions)
    window = batch_window(topologies, settings, pipeline.plans if pipeline is not None else None)
    if pipeline is not None:
        log.info(
            "ingest pipeline sized",
            extra={
                "take": window.take,
                "wait_ms": round(window.wait_s * 1000),
                "in_flight": window.in_flight,
                "decode_threads": settings.batching.decode_workers,
                "why": window.why,
            },
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

    async def publish_labels(events: Sequence[LabelEvent]) -> None:
        # all sent at once, each retried on its own until the broker acknowledges it
        await asyncio.gather(
            *(
                send_until_delivered(
                    labels,
                    key=event.id.encode(),
                    value=event.to_bytes(),
                    what="label event",
                    max_pause_s=max_pause_s,
                )
                for event in events
            )
        )

    metrics = metrics or Metrics()
    health = health or Health(stall_s=settings.runtime.stall_s)
    if pipeline is not None:
        ingest_agent(
            app,
            uploads,
            pipeline,
            publish_dead_letter,
            window.take,
            window.wait_s,
            window.in_flight,
            metrics,
            health,
            shutdown,
            publish_labels,
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
