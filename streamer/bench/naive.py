"""The baseline: a per-item local runtime, the way a naive pipeline processes a stream.

One message at a time: consume it, fetch, decode at full size, run the model on a batch of
one, upsert one row, commit the offset, and only then take the next message. Same models, same
servers, same machine as the streamer run it is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from operators.decode import ImageDecoder
from operators.fetch import Fetcher
from streamer.config.connections import kafka_options
from streamer.ingest.dedupe import content_hash
from streamer.models.embedders import Embedder, ImageEmbedder
from streamer.core.messages import parse_upload
from streamer.config.settings import KafkaSettings
from streamer.storage.store import VectorRow, VectorStore

__all__ = ["run_naive"]


def _full_size_prepare(embedder: Embedder, max_pixels: int) -> Callable[[bytes], object]:
    """Decode without DCT scaling (what a per-item runtime does), then timm's transform as it
    comes (whole-image resize, float pixels)."""
    if isinstance(embedder, ImageEmbedder):
        decoder = ImageDecoder(max_pixels=max_pixels, min_side=None)
        transform = embedder.model.transform
        return lambda data: transform(decoder.decode(data))
    return embedder.prepare


async def run_naive(
    kafka: KafkaSettings,
    topic: str,
    count: int,
    *,
    embedder: Embedder,
    fetcher: Fetcher,
    store: VectorStore,
    collection: str,
    max_pixels: int,
    group: str,
    progress: Callable[[int], None] = lambda done: None,
) -> float:
    """Process ``count`` messages of ``topic`` one by one; returns items per second."""
    prepare = _full_size_prepare(embedder, max_pixels)
    consumer = AIOKafkaConsumer(
        **kafka_options(kafka),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        done = 0
        started = time.perf_counter()
        while done < count:
            record = await consumer.getone()
            upload = parse_upload(record.value)
            data = (
                upload.text.encode() if upload.text is not None else fetcher.fetch(upload.uri or "")
            )
            vector = embedder.embed([prepare(data)])[0]
            store.upsert(
                collection,
                [
                    VectorRow(
                        id=upload.id,
                        vector=vector,
                        content_hash=content_hash(data),
                        model_version=embedder.version,
                        media_type=embedder.topology.media_type,
                        uri=upload.uri or "",
                        text=upload.text or "",
                        metadata=upload.metadata,
                    )
                ],
            )
            await consumer.commit()
            done += 1
            progress(done)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
