"""The producer of streamer: confluent-kafka (librdkafka), idempotent, acks from every in-sync
replica, every delivery confirmed.

Each message gets a delivery report. :meth:`Producer.flush` waits for all of them and returns
how many were delivered, or raises: :class:`TransientError` when every failure is the broker's
passing state (down, timed out, not enough replicas: retry), :class:`DeliveryError` when some
message was refused for good (too large, unknown topic, not authorised), naming the topic, the
key and the cause. Nothing is dropped silently: leaving the ``with`` block flushes.

Idempotence (``enable.idempotence``) makes the broker discard the duplicates that the
producer's own retries would otherwise write, so a producer run puts each message on its topic
once. It says nothing about two runs: publishing the same upload twice gives two messages, which
the worker's dedupe absorbs.

Batching is declared by the caller with a :class:`ProducerPolicy`: librdkafka collects what
:meth:`Producer.send` queues for up to ``linger_ms`` into batches of at most
``batch_max_messages`` / ``batch_max_bytes`` per partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, Message

from streamer.config.settings import KafkaSettings
from streamer.core.errors import ConfigError, StreamerError, TransientError
from streamer.kafka.client import BrokerErrors, client_config, wait_reachable

__all__ = [
    "DeliveryError",
    "Failure",
    "Producer",
    "ProducerPolicy",
    "Record",
    "produce",
    "producer_config",
]

#: how long one wait for deliveries (or for room in the queue) lasts: Ctrl-C is seen between two
_WAIT_S = 0.2
#: a flush waits this long past the delivery timeout, for the reports of the last messages
_FLUSH_GRACE_S = 5.0
#: failures kept as examples for the error (the rest are counted)
_EXAMPLES = 5
#: broker states that pass: the message may go through if sent again later
_TRANSIENT = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.BROKER_NOT_AVAILABLE,
    }
)


@dataclass(frozen=True, slots=True)
class ProducerPolicy:
    """How a producer batches, and how long it waits for the brokers."""

    linger_ms: int = 5
    batch_max_messages: int = 10_000
    batch_max_bytes: int = 1_000_000
    #: messages queued and not delivered yet; :meth:`Producer.send` waits when it is reached
    queue_max_messages: int = 100_000
    #: a message not acknowledged this long after it was sent fails (``message.timeout.ms``)
    delivery_timeout_s: float = 30.0
    #: the first contact with the brokers
    connect_timeout_s: float = 10.0
    idempotent: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_max_messages", "batch_max_bytes", "queue_max_messages"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ProducerPolicy.{name} must be at least 1")
        if self.linger_ms < 0:
            raise ConfigError("ProducerPolicy.linger_ms must not be negative")
        if self.delivery_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigError("ProducerPolicy timeouts must be positive")


@dataclass(frozen=True, slots=True)
class Record:
    """One message as it goes on the wire."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class Failure:
    """A message that was not delivered, and why."""

    topic: str
    key: bytes | None
    code: str  # librdkafka's name of the error, e.g. "MSG_SIZE_TOO_LARGE"
    reason: str
    transient: bool

    def __str__(self) -> str:
        key = self.key.decode(errors="replace") if self.key is not None else None
        return f"{self.topic} key {key!r}: {self.reason}"


class DeliveryError(StreamerError):
    """Messages the brokers refused for good; ``failures`` holds the first few."""

    def __init__(self, delivered: int, failed: int, failures: Sequence[Failure]) -> None:
        self.delivered = delivered
        self.failed = failed
        self.failures = tuple(failures)
        more = f" (and {failed - len(failures)} more)" if failed > len(failures) else ""
        shown = "; ".join(str(f) for f in failures)
        super().__init__(f"kafka refused {failed} message(s), delivered {delivered}: {shown}{more}")


def producer_config(
    kafka: KafkaSettings, policy: ProducerPolicy, errors: BrokerErrors
) -> dict[str, Any]:
    """librdkafka's producer configuration for the settings and the policy."""
    return {
        **client_config(kafka, errors),
        "enable.idempotence": policy.idempotent,
        "acks": "all",
        "linger.ms": policy.linger_ms,
        "batch.num.messages": policy.batch_max_messages,
        "batch.size": policy.batch_max_bytes,
        "queue.buffering.max.messages": policy.queue_max_messages,
        "message.timeout.ms": int(policy.delivery_timeout_s * 1000),
    }


class Producer:
    """Sends messages and accounts for every delivery report. Use it in a ``with`` block (or
    call :meth:`flush` and :meth:`close`): making one raises :class:`TransientError` when no
    broker answers within the policy's ``connect_timeout_s``."""

    def __init__(self, kafka: KafkaSettings, policy: ProducerPolicy | None = None) -> None:
        self.kafka = kafka
        self.policy = policy or ProducerPolicy()
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self._failures: list[Failure] = []
        self._errors = BrokerErrors()
        self._closed = False
        self._client = confluent_kafka.Producer(producer_config(kafka, self.policy, self._errors))
        try:
            wait_reachable(
                self._client, self._errors, kafka, timeout_s=self.policy.connect_timeout_s
            )
        except BaseException:
            self.close()
            raise

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue one message; waits while the queue is full. Raises at once when an earlier
        message failed because the brokers are unavailable: the rest would fail the same way."""
        self._raise_if_unavailable()
        self.sent += 1
        while True:
            try:
                self._client.produce(
                    topic, value, key, headers=list(headers) or None, on_delivery=self._report
                )
                break
            except BufferError:  # the queue is full: serve delivery reports until it is not
                self._client.poll(_WAIT_S)
                self._raise_if_unavailable()
            except KafkaException as exc:  # refused before it left: too large, unknown topic
                self._fail(topic, key, exc.args[0])
                if exc.args[0].fatal():
                    raise self._error() from exc
                return
        self._client.poll(0)

    def flush(self) -> int:
        """Wait for the delivery report of every message sent; returns how many were
        delivered (all of them), or raises (see the module)."""
        deadline = time.monotonic() + self.policy.delivery_timeout_s + _FLUSH_GRACE_S
        while self._client.flush(_WAIT_S) > 0:
            if time.monotonic() > deadline:
                raise TransientError(
                    "kafka",
                    f"{len(self._client)} message(s) to {self.kafka.bootstrap_servers} "
                    f"unconfirmed after {self.policy.delivery_timeout_s + _FLUSH_GRACE_S:.0f} s",
                )
        if self.failed:
            raise self._error()
        return self.delivered

    def close(self) -> None:
        """Free the client; what is not delivered yet is dropped, unreported. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if len(self._client):
            self._client.purge()
            self._client.poll(0)
        self._client.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self._fail(message.topic() or "", message.key(), error)

    def _fail(self, topic: str, key: str | bytes | None, error: KafkaError) -> None:
        self.failed += 1
        transient = error.retriable() or error.code() in _TRANSIENT
        raw = key.encode() if isinstance(key, str) else key
        failure = Failure(topic, raw, error.name(), error.str(), transient)
        if len(self._failures) < _EXAMPLES:
            self._failures.append(failure)
        elif not transient and all(f.transient for f in self._failures):
            self._failures[-1] = failure  # the error names a lasting cause when there is one

    def _raise_if_unavailable(self) -> None:
        if self._failures and any(f.transient for f in self._failures):
            raise self._error()

    def _error(self) -> StreamerError:
        if all(f.transient for f in self._failures):
            last = f" (last broker error: {self._errors.cause})" if self._errors.cause else ""
            return TransientError(
                "kafka",
                f"{self.failed} of {self.sent} message(s) not delivered to "
                f"{self.kafka.bootstrap_servers}: {self._failures[0].reason}{last}",
            )
        return DeliveryError(self.delivered, self.failed, self._failures)


def produce(
    kafka: KafkaSettings, records: Iterable[Record], policy: ProducerPolicy | None = None
) -> int:
    """Send ``records`` through one :class:`Producer`; returns how many were delivered (all
    of them), or raises (see the module)."""
    with Producer(kafka, policy) as producer:
        for record in records:
            producer.send(record.topic, record.value, key=record.key, headers=record.headers)
        return producer.flush()
