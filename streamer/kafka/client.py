"""What every confluent-kafka client of streamer shares: its configuration from the settings,
where librdkafka's log lines go, and a bounded first contact with the brokers.

librdkafka never fails to *make* a client: an unreachable broker shows up later, as errors
handed to ``error_cb`` and as requests that time out. :func:`wait_reachable` asks the cluster
for its metadata until it answers, all brokers are reported down, or ``timeout_s`` passes, so
a command fails in bounded time with a :class:`TransientError` naming the brokers and the
cause, instead of queueing messages that can never leave.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from streamer.config.connections import rdkafka_config
from streamer.config.settings import KafkaSettings
from streamer.core.errors import ConfigError, TransientError

__all__ = ["LIBRDKAFKA_LOGGER", "BrokerErrors", "client_config", "wait_reachable"]

#: librdkafka's lines, under the "kafka" logger a command quiets with the other Kafka clients
LIBRDKAFKA_LOGGER = "kafka.librdkafka"
#: one metadata request's wait; between two, the errors librdkafka reported are read
_PROBE_S = 0.5


class BrokerErrors:
    """The ``error_cb`` of a client: what librdkafka last said about the cluster. Its
    connection failures come before its "all brokers are down", and say why."""

    def __init__(self) -> None:
        self.cause: str | None = None
        self.all_down = False
        self.refused_credentials: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
            self.cause = self.cause or error.str()
            return
        if error.code() == KafkaError._AUTHENTICATION:
            self.refused_credentials = error.str()
        self.cause = error.str()

    def back(self) -> None:
        """The cluster answered: what was said before is over."""
        self.cause = None
        self.all_down = False


def client_config(kafka: KafkaSettings, errors: BrokerErrors) -> dict[str, Any]:
    """librdkafka configuration: the settings' brokers and credentials, ``errors`` as the
    ``error_cb``, and logs through :data:`LIBRDKAFKA_LOGGER` (never straight to stderr)."""
    return {
        **rdkafka_config(kafka),
        "client.id": kafka.app_id,
        "error_cb": errors,
        "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
    }


class _Client(Protocol):
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...
    def poll(self, timeout: float = -1) -> Any: ...


def wait_reachable(
    client: _Client, errors: BrokerErrors, kafka: KafkaSettings, *, timeout_s: float
) -> Any:
    """The cluster's metadata (``ClusterMetadata``) once a broker answers. Raises
    :class:`TransientError` when every broker is down or none answered in ``timeout_s``,
    :class:`ConfigError` when the brokers refuse the credentials."""
    deadline = time.monotonic() + timeout_s
    while True:
        wait_s = max(min(_PROBE_S, deadline - time.monotonic()), 0.01)
        try:
            metadata = client.list_topics(timeout=wait_s)
        except KafkaException as exc:
            failure = exc.args[0].str() if exc.args else str(exc)
        else:
            errors.back()
            return metadata
        client.poll(0)  # hands the errors reported meanwhile to ``errors``
        if errors.refused_credentials is not None:
            raise ConfigError(
                f"kafka at {kafka.bootstrap_servers} refused the credentials: "
                f"{errors.refused_credentials}"
            )
        if errors.all_down or time.monotonic() >= deadline:
            raise TransientError(
                "kafka", f"cannot reach {kafka.bootstrap_servers}: {errors.cause or failure}"
            )
