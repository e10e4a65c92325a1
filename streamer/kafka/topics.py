"""Create the contract's topics, when they are missing, with the configured partition count,
replication factor and ``min.insync.replicas`` (through confluent-kafka's admin client)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from streamer.config.settings import KafkaSettings
from streamer.kafka.admin import TopicsReport, create_missing_topics

__all__ = ["create_topics", "ensure_topics", "topic_configs", "topic_names"]

log = logging.getLogger(__name__)


def topic_names(kafka: KafkaSettings) -> list[str]:
    return [
        kafka.uploads_topic,
        kafka.deadletter_topic,
        kafka.labels_topic,
        kafka.search_requests_topic,
        kafka.search_results_topic,
    ]


def topic_configs(kafka: KafkaSettings) -> dict[str, str]:
    """Per-topic configuration streamer sets on the topics it creates."""
    return {"min.insync.replicas": str(kafka.min_insync_replicas)}


def create_topics(kafka: KafkaSettings, extra: Sequence[str] = ()) -> TopicsReport:
    """Create the missing topics (streamer's own and ``extra``); says which were created and
    which existed. Idempotent."""
    report = create_missing_topics(
        kafka,
        [*topic_names(kafka), *extra],
        partitions=kafka.partitions,
        replication_factor=kafka.replication_factor,
        configs=topic_configs(kafka),
    )
    if report.created:
        log.info(
            "created topics %s with %d partitions, %d replicas, min.insync.replicas %d",
            list(report.created),
            kafka.partitions,
            kafka.replication_factor,
            kafka.min_insync_replicas,
        )
    return report


async def ensure_topics(kafka: KafkaSettings, extra: Sequence[str] = ()) -> list[str]:
    """:func:`create_topics` from a coroutine; returns the names created."""
    report = await asyncio.to_thread(create_topics, kafka, extra)
    return list(report.created)
