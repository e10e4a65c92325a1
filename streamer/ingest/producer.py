"""Publish media references on ``media.uploads``: files, folders, globs, URIs and inline text."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from operators.fetch import path_to_uri
from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.core.errors import StreamerError, TransientError
from streamer.core.messages import IMAGE_SUFFIXES, TEXT_SUFFIXES, UploadMessage

__all__ = ["asset_id_for", "expand_sources", "publish", "publish_raw", "text_upload"]

MEDIA_SUFFIXES = IMAGE_SUFFIXES | TEXT_SUFFIXES


def asset_id_for(uri: str) -> str:
    """A stable, readable id: the file name and a short hash of the full URI."""
    name = uri.rstrip("/").rsplit("/", 1)[-1][:64] or "asset"
    return f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:10]}"


def text_upload(
    text: str, *, asset_id: str | None = None, metadata: Mapping[str, Any] | None = None
) -> UploadMessage:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return UploadMessage(
        id=asset_id or f"text-{digest}", text=text, media_type="text", metadata=dict(metadata or {})
    )


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
    )


def expand_sources(
    sources: Sequence[str], *, metadata: Mapping[str, Any] | None = None
) -> list[UploadMessage]:
    """One upload per file, folder entry, glob match or URI, in a stable order."""
    uris: list[str] = []
    for source in sources:
        if "://" in source:
            uris.append(source)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            uris.extend(path_to_uri(p) for p in _files_under(path))
        elif path.is_file():
            uris.append(path_to_uri(path))
        else:
            matches = sorted(glob.glob(str(path), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise StreamerError(f"no file, folder or glob match for {source!r}")
            uris.extend(path_to_uri(p) for p in files)
    uploads = []
    for uri in dict.fromkeys(uris):
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
        raise TransientError("kafka", f"cannot reach {kafka.bootstrap_servers}: {exc}") from exc
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        for future in futures:
            await future
        return len(futures)
    finally:
        await producer.stop()
