"""Publish media references on ``media.uploads``: files, folders, globs, URIs and inline text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.core.digests import asset_id_for, text_id
from streamer.core.errors import StreamerError, TransientError
from streamer.core.messages import UploadMessage
from streamer.runner.local import expand_inputs

__all__ = ["expand_sources", "publish", "publish_raw", "text_upload"]


def text_upload(
    text: str, *, asset_id: str | None = None, metadata: Mapping[str, Any] | None = None
) -> UploadMessage:
    return UploadMessage(
        id=asset_id or text_id(text), text=text, media_type="text", metadata=dict(metadata or {})
    )


def expand_sources(
    sources: Sequence[str], *, metadata: Mapping[str, Any] | None = None
) -> list[UploadMessage]:
    """One upload per file, folder entry (image and text files), glob match or URI, in a
    stable order."""
    uploads = []
    for source in expand_inputs(sources):
        uri = source.uri or ""
        try:
            uploads.append(
                UploadMessage(id=asset_id_for(uri), uri=uri, metadata=dict(metadata or {}))
            )
        except ValidationError as exc:
            raise StreamerError(f"cannot publish {uri}: {exc.errors()[0]['msg']}") from exc
    return uploads


async def publish(
    kafka: KafkaSettings, uploads: Iterable[UploadMessage], *, topic: str | None = None
) -> int:
    """Send every upload keyed by its id and wait until the broker has them all."""
    records = ((u.id.encode(), u.to_bytes()) for u in uploads)
    return await publish_raw(kafka, records, topic=topic or kafka.uploads_topic)


async def publish_raw(
    kafka: KafkaSettings, records: Iterable[tuple[bytes | None, bytes]], *, topic: str
) -> int:
    """Send (key, value) records as they are; used for replays and for testing bad input."""
    producer = AIOKafkaProducer(
        **kafka_options(kafka),
        acks="all",
        linger_ms=5,
        request_timeout_ms=15_000,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()  # its connections and tasks, half started
        raise TransientError("kafka", f"cannot reach {kafka.bootstrap_servers}: {exc}") from exc
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        for future in futures:
            await future
        return len(futures)
    finally:
        await producer.stop()
