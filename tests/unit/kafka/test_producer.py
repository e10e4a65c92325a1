"""The producer's configuration, and its accounting: every message delivered or its failure
raised, typed by what the caller should do about it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException

from streamer.config.settings import KafkaSettings
from streamer.core.errors import ConfigError, TransientError
from streamer.kafka.client import BrokerErrors
from streamer.kafka.producer import (
    DeliveryError,
    Failure,
    Producer,
    ProducerPolicy,
    Record,
    produce,
    producer_config,
)
from streamer.stack.processes import free_port

KAFKA = KafkaSettings(bootstrap_servers="k1:9092")
Report = Callable[[KafkaError | None, Any], None]


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None) -> None:
        self._topic, self._key = topic, key

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key


class FakeClient:
    """librdkafka's producer as the wrapper sees it: ``produce`` queues, ``poll`` and ``flush``
    hand out the delivery reports; ``refuse`` maps a key to the error its delivery reports;
    ``capacity`` is the queue's size."""

    def __init__(self, refuse: dict[bytes, KafkaError], capacity: int = 1000) -> None:
        self.refuse = refuse
        self.capacity = capacity
        self.queued: list[tuple[str, bytes | None, Report]] = []
        self.written: list[tuple[str, bytes | None, bytes, Any]] = []
        self.closed = False

    def __call__(self, config: dict[str, Any]) -> FakeClient:
        self.config = config
        return self

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return "metadata"

    def produce(
        self, topic: str, value: bytes, key: bytes | None, *, headers: Any, on_delivery: Report
    ) -> None:
        if len(value) > 100:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        if len(self.queued) >= self.capacity:
            raise BufferError("queue full")
        self.queued.append((topic, key, on_delivery))
        self.written.append((topic, key, value, headers))

    def poll(self, timeout: float = -1) -> int:
        queued, self.queued = self.queued, []
        for topic, key, report in queued:
            report(self.refuse.get(key or b""), FakeMessage(topic, key))
        return len(queued)

    def flush(self, timeout: float = -1) -> int:
        self.poll()
        return 0

    def purge(self) -> None:
        self.queued.clear()

    def close(self) -> bool:
        self.closed = True
        return True

    def __len__(self) -> int:
        return len(self.queued)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClient]:
    def install(refuse: dict[bytes, KafkaError] | None = None, capacity: int = 1000) -> FakeClient:
        client = FakeClient(refuse or {}, capacity)
        monkeypatch.setattr(confluent_kafka, "Producer", client)
        return client

    return install


def records(n: int) -> list[Record]:
    return [Record("uploads", b"v", key=f"k{i}".encode()) for i in range(n)]


def test_idempotent_acks_all_and_the_policy_batching() -> None:
    policy = ProducerPolicy(linger_ms=20, batch_max_messages=500, batch_max_bytes=65_536)
    config = producer_config(KAFKA, policy, BrokerErrors())
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["linger.ms"] == 20
    assert config["batch.num.messages"] == 500
    assert config["batch.size"] == 65_536
    assert config["message.timeout.ms"] == 30_000
    assert config["bootstrap.servers"] == "k1:9092"
    plain = producer_config(KAFKA, ProducerPolicy(idempotent=False), BrokerErrors())
    assert plain["enable.idempotence"] is False and plain["acks"] == "all"


def test_a_policy_that_cannot_work_is_refused() -> None:
    with pytest.raises(ConfigError, match="batch_max_messages"):
        ProducerPolicy(batch_max_messages=0)
    with pytest.raises(ConfigError, match="timeouts"):
        ProducerPolicy(delivery_timeout_s=0)


def test_every_message_delivered_is_counted(fake: Callable[..., FakeClient]) -> None:
    client = fake(capacity=7)  # a full queue makes send wait, and lose nothing
    headers = [("x-attempts", b"2")]
    sent = [*records(49), Record("uploads", b"v", key=b"last", headers=headers)]
    assert produce(KAFKA, sent) == 50
    assert [key for _, key, _, _ in client.written] == [r.key for r in sent]
    assert client.written[-1][3] == headers
    assert client.written[0][3] is None  # no headers: none on the wire
    assert client.closed


def test_a_refused_message_is_named_and_the_rest_delivered(
    fake: Callable[..., FakeClient],
) -> None:
    fake({b"k3": KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not authorised")})
    big = Record("uploads", b"x" * 200, key=b"big")
    with pytest.raises(DeliveryError) as raised:
        produce(KAFKA, [*records(10), big])
    error = raised.value
    assert (error.delivered, error.failed) == (9, 2)
    assert "uploads key 'k3': not authorised" in str(error)
    assert "uploads key 'big': too large" in str(error)
    assert [f.code for f in error.failures] == ["TOPIC_AUTHORIZATION_FAILED", "MSG_SIZE_TOO_LARGE"]


def test_a_broker_that_went_away_is_transient_and_stops_the_sending(
    fake: Callable[..., FakeClient],
) -> None:
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT, "Message timed out")
    client = fake({b"k0": timed_out})
    with pytest.raises(TransientError, match=r"1 of 1 message\(s\) not delivered .*timed out"):
        produce(KAFKA, records(100))
    assert len(client.written) == 1  # the rest would have failed the same way
    assert client.closed


def test_a_lasting_failure_is_named_even_after_many_passing_ones() -> None:
    error = DeliveryError(
        3, 12, [Failure("uploads", b"a", "MSG_SIZE_TOO_LARGE", "too large", transient=False)]
    )
    assert str(error) == (
        "kafka refused 12 message(s), delivered 3: uploads key 'a': too large (and 11 more)"
    )


def test_no_broker_fails_fast_with_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens
    started = time.monotonic()
    with pytest.raises(TransientError, match=f"kafka unavailable: cannot reach {address}"):
        Producer(KafkaSettings(bootstrap_servers=address))
    assert time.monotonic() - started < 15
