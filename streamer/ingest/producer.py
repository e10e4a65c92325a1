"""Publish media references on ``media.uploads``: files, folders, globs, URIs and inline text.

Messages go through streamer's confluent-kafka producer (:mod:`streamer.kafka.producer`):
idempotent, acknowledged by every in-sync replica, each delivery confirmed. ``publish`` and
``publish_raw`` are coroutines for async callers; they run the producer in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from streamer.config.settings import KafkaSettings
from streamer.core.digests import asset_id_for, text_id
from streamer.core.errors import StreamerError
from streamer.core.messages import UploadMessage
from streamer.kafka.producer import Record, produce
from streamer.runner.local import expand_inputs

__all__ = ["expand_sources", "publish", "publish_raw", "text_upload", "upload_records"]


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


def upload_records(uploads: Iterable[UploadMessage], topic: str) -> Iterator[Record]:
    """The messages of ``uploads`` on ``topic``, each keyed by its asset id."""
    return (Record(topic, u.to_bytes(), key=u.id.encode()) for u in uploads)


async def publish(
    kafka: KafkaSettings, uploads: Iterable[UploadMessage], *, topic: str | None = None
) -> int:
    """Send every upload keyed by its id and wait until the broker has them all; returns how
    many were delivered (all, or it raises: see :mod:`streamer.kafka.producer`)."""
    records = upload_records(uploads, topic or kafka.uploads_topic)
    return await asyncio.to_thread(produce, kafka, records)


async def publish_raw(
    kafka: KafkaSettings, records: Iterable[tuple[bytes | None, bytes]], *, topic: str
) -> int:
    """Send (key, value) records as they are; used for replays and for testing bad input."""
    messages = (Record(topic, value, key=key) for key, value in records)
    return await asyncio.to_thread(produce, kafka, messages)
