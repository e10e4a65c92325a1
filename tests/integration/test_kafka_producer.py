"""streamer's confluent-kafka producer and admin client on the real broker (Tansu): every
message on its topic exactly once, refusals named, topics created once, replays with headers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamer.config.settings import KafkaSettings, Settings, namespaced, settings_env
from streamer.ingest.deadletters import replay_letters
from streamer.ingest.producer import publish_raw
from streamer.kafka.admin import delete_topics
from streamer.kafka.producer import DeliveryError, Producer, Record, produce
from streamer.kafka.topics import create_topics, topic_names

pytestmark = pytest.mark.integration

Seen = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@pytest.fixture
def kafka(stack: Settings) -> Iterator[KafkaSettings]:
    """Topics of the test's own, deleted afterwards."""
    settings = namespaced(stack, f"t{uuid.uuid4().hex[:10]}", ())
    yield settings.kafka
    delete_topics(settings.kafka, topic_names(settings.kafka))


def read_topic(kafka: KafkaSettings, topic: str, idle_s: float = 3.0) -> list[Seen]:
    """Every message on ``topic``, from the start of each partition until none came for
    ``idle_s``. (Not up to the partitions' ends: Tansu's ListOffsets answers the last batch's
    base offset + 1 as the end, not the last offset + 1.)"""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen: list[Seen] = []
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                given = message.headers() or []
                pairs = given.items() if isinstance(given, dict) else given
                headers = [(name, _raw(value) or b"") for name, value in pairs]
                seen.append((_raw(message.key()), _raw(message.value()), headers))
                last = time.monotonic()
        return seen
    finally:
        consumer.close()


def _raw(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def test_every_message_lands_exactly_once(kafka: KafkaSettings) -> None:
    create_topics(kafka)
    n = 20_000
    records = [
        Record(kafka.uploads_topic, f"value {i}".encode(), key=f"asset-{i}".encode())
        for i in range(n)
    ]
    assert produce(kafka, records) == n  # a delivery report for each, none failed
    seen = read_topic(kafka, kafka.uploads_topic)
    counts = Counter(key for key, _, _ in seen)
    assert len(seen) == n  # nothing written twice: the broker holds n messages
    assert set(counts) == {r.key for r in records}  # none missing
    assert max(counts.values()) == 1  # no duplicates
    assert all(value == f"value {key.decode()[6:]}".encode() for key, value, _ in seen if key)


def test_the_async_wrapper_and_the_producer_agree(kafka: KafkaSettings) -> None:
    create_topics(kafka)
    pairs: list[tuple[bytes | None, bytes]] = [(f"k{i}".encode(), b"v") for i in range(100)]
    assert asyncio.run(publish_raw(kafka, pairs, topic=kafka.uploads_topic)) == 100
    with Producer(kafka) as producer:
        producer.send(kafka.uploads_topic, b"w", key=b"x", headers=[("h", b"1")])
        assert producer.flush() == 1
    seen = read_topic(kafka, kafka.uploads_topic)
    assert len(seen) == 101
    assert (b"x", b"w", [("h", b"1")]) in seen


def test_a_refused_message_is_named_and_the_others_are_delivered(kafka: KafkaSettings) -> None:
    create_topics(kafka)
    records = [Record(kafka.uploads_topic, b"v", key=f"k{i}".encode()) for i in range(10)]
    too_large = Record(kafka.uploads_topic, b"x" * 2_000_000, key=b"huge")
    with pytest.raises(DeliveryError, match=r"key 'huge': .*too large") as raised:
        produce(kafka, [*records[:5], too_large, *records[5:]])
    assert (raised.value.delivered, raised.value.failed) == (10, 1)
    assert len(read_topic(kafka, kafka.uploads_topic)) == 10


def test_topics_are_created_once(kafka: KafkaSettings) -> None:
    extra = f"{kafka.uploads_topic}.extra"
    first = create_topics(kafka, extra=[extra])
    assert set(first.created) == {*topic_names(kafka), extra} and first.existing == ()
    again = create_topics(kafka, extra=[extra])
    assert again.created == () and set(again.existing) == set(first.created)
    delete_topics(kafka, [extra])


def test_the_topics_command_says_created_then_exists(stack: Settings) -> None:
    settings = namespaced(stack, f"t{uuid.uuid4().hex[:10]}", ())
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "streamer", "topics", "create"]
    try:
        outputs = [
            subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            for _ in range(2)
        ]
    finally:
        delete_topics(settings.kafka, topic_names(settings.kafka))
    names = topic_names(settings.kafka)
    n = len(names)
    assert n == 5  # uploads, dead letters, labels, search requests and results
    assert [f"{name}: created" for name in names] == outputs[0].splitlines()[:n]
    assert [f"{name}: exists" for name in names] == outputs[1].splitlines()[:n]
    assert outputs[1].splitlines()[n] == f"0 created, {n} existed"


def test_a_replay_goes_back_to_its_topic_with_its_attempts(kafka: KafkaSettings) -> None:
    create_topics(kafka)
    headers = [("x-error-stage", b"fetch"), ("x-source-topic", kafka.uploads_topic.encode()),
               ("x-attempts", b"2")]  # fmt: skip
    letter = Record(kafka.deadletter_topic, b'{"id": "a1"}', key=b"a1", headers=headers)
    produce(kafka, [letter])
    replayed = asyncio.run(replay_letters(kafka))
    assert [r.key for r in replayed] == [b"a1"]
    assert read_topic(kafka, kafka.uploads_topic) == [
        (b"a1", b'{"id": "a1"}', [("x-attempts", b"2")])
    ]
