"""Create the contract's topics, when they are missing, with the configured partition count,
replication factor and ``min.insync.replicas``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.core.errors import TransientError

__all__ = ["ensure_topics", "topic_configs", "topic_names"]

log = logging.getLogger(__name__)


def topic_names(kafka: KafkaSettings) -> list[str]:
    return [
        kafka.uploads_topic,
        kafka.deadletter_topic,
        kafka.search_requests_topic,
        kafka.search_results_topic,
    ]


def topic_configs(kafka: KafkaSettings) -> dict[str, str]:
    """Per-topic configuration streamer sets on the topics it creates."""
    return {"min.insync.replicas": str(kafka.min_insync_replicas)}


async def ensure_topics(kafka: KafkaSettings, extra: Sequence[str] = ()) -> list[str]:
    """Create missing topics (streamer's own and ``extra``); returns the names created."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka), request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaError as exc:
        raise TransientError("kafka", f"cannot reach {kafka.bootstrap_servers}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in [*topic_names(kafka), *extra] if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=kafka.partitions,
                            replication_factor=kafka.replication_factor,
                            topic_configs=topic_configs(kafka),
                        )
                        for t in missing
                    ]
                )
            log.info(
                "created topics %s with %d partitions, %d replicas, min.insync.replicas %d",
                missing,
                kafka.partitions,
                kafka.replication_factor,
                kafka.min_insync_replicas,
            )
        return missing
    finally:
        await admin.close()
