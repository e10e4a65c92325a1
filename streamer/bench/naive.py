"""The baseline: a per-item local runtime, the way a naive pipeline processes a stream.

One message at a time: consume it, fetch, decode at full size, preprocess with the model's
transform as it comes, run the model on a batch of one, upsert one row, commit the offset, and
only then take the next message. Same topology (its stages' baselines), same models, same
servers, same machine as the streamer run it is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.core.digests import content_hash
from streamer.core.errors import StageError
from streamer.core.messages import parse_upload
from streamer.runner.operator import Source
from streamer.runner.plan import Plan
from streamer.runner.runner import Runner
from streamer.storage.store import VectorRow, VectorStore

__all__ = ["run_naive"]


async def run_naive(
    kafka: KafkaSettings,
    topic: str,
    count: int,
    *,
    plan: Plan,
    runner: Runner,
    store: VectorStore,
    collection: str,
    group: str,
    progress: Callable[[int], None] = lambda done: None,
) -> float:
    """Process ``count`` messages of ``topic`` one by one with ``plan`` (the baseline of a
    topology) on ``runner`` (an inline one: every stage in this thread); returns items per
    second."""
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
            source = Source(text=upload.text) if upload.text is not None else Source(uri=upload.uri)
            (data,) = await runner.run(plan, [source], ids=[upload.id], last=1)
            if isinstance(data, StageError):
                raise data
            (vector,) = await runner.run(plan, [data], ids=[upload.id], first=1)
            if isinstance(vector, StageError):
                raise vector
            row = VectorRow(
                id=upload.id,
                vector=vector,
                content_hash=content_hash(data),
                model_version=plan.version,
                media_type=plan.topology.media_type,
                uri=upload.uri or "",
                text=upload.text or "",
                metadata=upload.metadata,
            )
            store.upsert(collection, [row])
            await consumer.commit()
            done += 1
            progress(done)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
