"""``streamer dlq``: read the dead letters, and replay them to where they came from.

Replaying re-publishes each original value, untouched, to its ``x-source-topic`` with its
key and its ``x-attempts`` count, so a letter that fails again comes back counted; it goes
through streamer's idempotent producer (:mod:`streamer.kafka.producer`). Replays
advance a consumer group of their own (``<app_id>-dlq-replay``): each letter is replayed once,
unless ``--from-beginning`` asks for all of them again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.kafka.producer import Record, produce

__all__ = ["Letter", "list_letters", "replay_letters"]


@dataclass(frozen=True, slots=True)
class Letter:
    offset: int
    partition: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def stage(self) -> str:
        return self.headers.get("x-error-stage", "")

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> Letter:
        headers = {k: (v or b"").decode(errors="replace") for k, v in (record.headers or [])}
        return cls(record.offset, record.partition, record.key, record.value or b"", headers)


async def _drain(
    consumer: AIOKafkaConsumer, limit: int | None, idle_ms: int = 1500
) -> list[Letter]:
    letters: list[Letter] = []
    while limit is None or len(letters) < limit:
        batch = await consumer.getmany(timeout_ms=idle_ms)
        if not batch:
            break
        for records in batch.values():
            letters.extend(Letter.from_record(r) for r in records)
    return letters if limit is None else letters[:limit]


async def list_letters(kafka: KafkaSettings, *, limit: int | None = 100) -> list[Letter]:
    """The dead letters from the beginning of the topic (reads only; commits nothing)."""
    consumer = AIOKafkaConsumer(
        kafka.deadletter_topic,
        **kafka_options(kafka),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        return await _drain(consumer, limit)
    finally:
        await consumer.stop()


async def replay_letters(
    kafka: KafkaSettings,
    *,
    stage: str | None = None,
    from_beginning: bool = False,
    dry_run: bool = False,
) -> list[Letter]:
    """Re-publish the letters not replayed yet (of one ``stage``, if given)."""
    group = f"{kafka.app_id}-dlq-replay"
    consumer = AIOKafkaConsumer(
        kafka.deadletter_topic,
        **kafka_options(kafka),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        session_timeout_ms=int(kafka.session_timeout_s * 1000),
        heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
    )
    await consumer.start()
    try:
        if from_beginning:
            await _wait_assigned(consumer)
            await consumer.seek_to_beginning()
        letters = [
            letter
            for letter in await _drain(consumer, None, idle_ms=3000)
            if stage is None or letter.stage == stage
        ]
        if dry_run:
            return letters
        if letters:  # raises unless every replay was delivered
            await asyncio.to_thread(produce, kafka, [_replay(kafka, letter) for letter in letters])
        await consumer.commit()  # only after every replay is on the broker
        return letters
    finally:
        await consumer.stop()


def _replay(kafka: KafkaSettings, letter: Letter) -> Record:
    """The letter's original message, back to its source topic, its attempts counted."""
    return Record(
        letter.headers.get("x-source-topic") or kafka.uploads_topic,
        letter.value,
        key=letter.key,
        headers=[("x-attempts", letter.headers.get("x-attempts", "1").encode())],
    )


async def _wait_assigned(consumer: AIOKafkaConsumer, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not consumer.assignment():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("no partitions of the dead-letter topic were assigned")
        await consumer.getmany(timeout_ms=200)
