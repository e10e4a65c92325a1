"""``streamer bench produce``: producer throughput, confluent-kafka beside aiokafka, on the same
broker in one run.

Both send the same ``messages`` upload messages (the JSON a file reference makes, keyed by its
asset id, as ``streamer produce`` writes them) to one fresh topic of the embedded stack's
broker, acks from every in-sync replica, and wait for every acknowledgement. confluent-kafka
runs as streamer's producer does (:class:`streamer.kafka.producer.Producer`: idempotent, the
default :class:`ProducerPolicy`); aiokafka as ``publish`` ran it before (acks=all, linger 5 ms,
every send awaited into a future, all the futures awaited at the end).

A round of each on the first 5,000 messages warms the topic and the clients up, unmeasured.
Then only the sends and their acknowledgements are timed: each client is started and has
delivered one message first. That start is reported apart, as ``*_start_s``: librdkafka's
idempotent producer asks for a producer id first, which takes up to 0.5 s (when its first try
finds no connection up yet, it tries again 500 ms later). The two take turns, ``rounds``
times, and each figure is the median: on a shared machine a busy spell then falls on both
alike. The stack is started when it is not up, and stopped again; the topic is deleted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings, Settings
from streamer.core.errors import StreamerError
from streamer.core.messages import UploadMessage
from streamer.kafka.admin import create_missing_topics, delete_topics
from streamer.kafka.producer import Producer
from streamer.kafka.topics import topic_configs
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up

__all__ = ["bench_messages", "run_produce_bench"]

Message = tuple[bytes, bytes]
CLIENTS = ("confluent-kafka", "aiokafka")
_WARM = (b"warm-up", b"{}")
WARM_UP_MESSAGES = 5_000


def bench_messages(count: int) -> list[Message]:
    """``count`` (key, value) pairs, as ``streamer produce`` makes them for a folder of images."""
    messages = []
    for i in range(count):
        upload = UploadMessage(
            id=f"upload-{i:09d}.jpg-{i:016x}",
            uri=f"s3://media-uploads/acme/2026/11/27/upload-{i:09d}.jpg",
            metadata={"tenant": f"tenant-{i % 7}", "camera": "front-door"},
        )
        messages.append((upload.id.encode(), upload.to_bytes()))
    return messages


def confluent_run(
    kafka: KafkaSettings, topic: str, messages: Sequence[Message]
) -> tuple[float, float]:
    """(seconds to start and deliver one message, seconds to deliver ``messages``)."""
    started = time.perf_counter()
    with Producer(kafka) as producer:
        producer.send(topic, _WARM[1], key=_WARM[0])
        producer.flush()
        began = time.perf_counter()
        for key, value in messages:
            producer.send(topic, value, key=key)
        delivered = producer.flush()
        ended = time.perf_counter()
    if delivered != len(messages) + 1:
        raise StreamerError(f"confluent-kafka delivered {delivered} of {len(messages) + 1}")
    return began - started, ended - began


async def aiokafka_run(
    kafka: KafkaSettings, topic: str, messages: Sequence[Message]
) -> tuple[float, float]:
    """The same, through aiokafka as ``publish`` used it."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        **kafka_options(kafka), acks="all", linger_ms=5, request_timeout_ms=15_000
    )
    await producer.start()
    try:
        await (await producer.send(topic, key=_WARM[0], value=_WARM[1]))
        began = time.perf_counter()
        futures = [await producer.send(topic, key=key, value=value) for key, value in messages]
        for future in futures:
            await future
        return began - started, time.perf_counter() - began
    finally:
        await producer.stop()


def run_produce_bench(
    base: Settings, *, messages: int = 100_000, rounds: int = 3, quiet: bool = False
) -> dict[str, Any]:
    """Measure both producers (see the module doc); print a table and return the figures."""
    console = Console(stderr=quiet)
    batch = bench_messages(messages)
    started_at = time.perf_counter()
    state, started_stack = stack_up(base)
    try:
        kafka = recorded_settings(base).kafka
        topic = f"bench.produce.{uuid.uuid4().hex[:8]}"
        create_missing_topics(
            kafka,
            [topic],
            partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            configs=topic_configs(kafka),
        )
        try:
            runs = _measure(kafka, topic, batch, rounds)
        finally:
            delete_topics(kafka, [topic])
    finally:
        if started_stack:
            stack_down(base)
    rates = {client: [messages / s for _, s in runs[client]] for client in CLIENTS}
    confluent = statistics.median(rates["confluent-kafka"])
    aiokafka = statistics.median(rates["aiokafka"])
    figures: dict[str, Any] = {
        "messages": messages,
        "rounds": rounds,
        "value_bytes": round(statistics.mean(len(v) for _, v in batch)),
        "partitions": kafka.partitions,
        "broker": state.kafka_bootstrap,
        "produce_confluent_msgs_per_s": round(confluent, 1),
        "produce_aiokafka_msgs_per_s": round(aiokafka, 1),
        "produce_confluent_over_aiokafka": round(confluent / aiokafka, 2),
        "produce_confluent_start_s": round(
            statistics.median(s for s, _ in runs["confluent-kafka"]), 3
        ),
        "produce_aiokafka_start_s": round(statistics.median(s for s, _ in runs["aiokafka"]), 3),
        "produce_msgs_per_s_by_round": {c: [round(r, 1) for r in rates[c]] for c in CLIENTS},
        "seconds": round(time.perf_counter() - started_at, 1),
    }
    _print(console, figures)
    return figures


def _measure(
    kafka: KafkaSettings, topic: str, batch: Sequence[Message], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    warm_up = batch[:WARM_UP_MESSAGES]  # a fresh topic and fresh clients are slower at first
    confluent_run(kafka, topic, warm_up)
    asyncio.run(aiokafka_run(kafka, topic, warm_up))
    runs: dict[str, list[tuple[float, float]]] = {client: [] for client in CLIENTS}
    for _ in range(rounds):
        runs["confluent-kafka"].append(confluent_run(kafka, topic, batch))
        runs["aiokafka"].append(asyncio.run(aiokafka_run(kafka, topic, batch)))
    return runs


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(
        title=f"produce: {f['messages']} messages of ~{f['value_bytes']} B to {f['partitions']} "
        f"partitions, acks=all, median of {f['rounds']} rounds"
    )
    table.add_column("client")
    table.add_column("messages/s", justify="right")
    table.add_column("start + first delivery", justify="right")
    table.add_column("rounds", justify="right")
    for client, key in (("confluent-kafka", "confluent"), ("aiokafka", "aiokafka")):
        by_round = f["produce_msgs_per_s_by_round"][client]
        table.add_row(
            f"{client} (idempotent)" if key == "confluent" else client,
            f"{f[f'produce_{key}_msgs_per_s']:.0f}",
            f"{f[f'produce_{key}_start_s'] * 1000:.0f} ms",
            ", ".join(f"{r:.0f}" for r in by_round),
        )
    console.print(table)
    console.print(
        f"confluent-kafka / aiokafka: {f['produce_confluent_over_aiokafka']:.2f}x; "
        f"{f['seconds']} s in all"
    )
