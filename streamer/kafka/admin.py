"""Topic administration through confluent-kafka's ``AdminClient``: create the topics that are
missing, leave the others as they are, and say which was which (and delete topics, for
benchmarks and tests).

Topics that exist are found in the cluster's metadata and never asked for again (a client
allowed to write but not to create topics still gets through); a topic another client creates
meanwhile comes back as ``TOPIC_ALREADY_EXISTS`` and counts as existing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamer.config.settings import KafkaSettings
from streamer.core.errors import StreamerError, TransientError
from streamer.kafka.client import BrokerErrors, client_config, wait_reachable

__all__ = ["TopicsReport", "create_missing_topics", "delete_topics"]

#: answers that mean "not now": the request may succeed when made again
_TRANSIENT = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
        KafkaError.BROKER_NOT_AVAILABLE,
    }
)


@dataclass(frozen=True, slots=True)
class TopicsReport:
    """The topics asked for, split into those this call created and those that were there."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def create_missing_topics(
    kafka: KafkaSettings,
    names: Sequence[str],
    *,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str],
    timeout_s: float = 10.0,
) -> TopicsReport:
    """Create those of ``names`` the cluster lacks, with ``partitions``, ``replication_factor``
    and the topic ``configs``; waits until the brokers have them. Raises
    :class:`TransientError` when the brokers cannot be reached in ``timeout_s``, and
    :class:`StreamerError` when they refuse a topic (naming it and why)."""
    admin, metadata = _connect(kafka, timeout_s)
    wanted = list(dict.fromkeys(names))
    existing = [name for name in wanted if name in metadata.topics]
    missing = [name for name in wanted if name not in metadata.topics]
    if not missing:
        return TopicsReport(created=(), existing=tuple(existing))
    futures = admin.create_topics(
        [NewTopic(name, partitions, replication_factor, config=dict(configs)) for name in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name in missing:
        try:
            futures[name].result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                existing.append(name)
                continue
            cause = f"cannot create topic {name!r}: {error.str()}"
            if _transient(error):
                raise TransientError("kafka", cause) from exc
            raise StreamerError(
                f"{cause} (on {kafka.bootstrap_servers}, with {partitions} partitions, "
                f"{replication_factor} replicas, {dict(configs)})"
            ) from exc
        created.append(name)
    return TopicsReport(created=tuple(created), existing=tuple(n for n in wanted if n in existing))


def delete_topics(kafka: KafkaSettings, names: Sequence[str], *, timeout_s: float = 10.0) -> None:
    """Delete ``names`` (those that exist; the others are left alone). For benchmarks and tests:
    the contract's topics are never deleted by streamer."""
    admin, metadata = _connect(kafka, timeout_s)
    present = [name for name in dict.fromkeys(names) if name in metadata.topics]
    if not present:
        return
    futures = admin.delete_topics(present, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name in present:
        try:
            futures[name].result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # gone meanwhile
            cause = f"cannot delete topic {name!r}: {error.str()}"
            if _transient(error):
                raise TransientError("kafka", cause) from exc
            raise StreamerError(f"{cause} (on {kafka.bootstrap_servers})") from exc


def _connect(kafka: KafkaSettings, timeout_s: float) -> tuple[AdminClient, Any]:
    """An admin client, and the cluster's metadata once a broker answered."""
    errors = BrokerErrors()
    admin = AdminClient(client_config(kafka, errors))
    return admin, wait_reachable(admin, errors, kafka, timeout_s=timeout_s)


def _transient(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _TRANSIENT
