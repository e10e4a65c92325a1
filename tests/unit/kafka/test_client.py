"""The first contact with the brokers is bounded, and its error says why it failed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamer.config.settings import KafkaSettings
from streamer.core.errors import ConfigError, TransientError
from streamer.kafka.client import LIBRDKAFKA_LOGGER, BrokerErrors, client_config, wait_reachable

KAFKA = KafkaSettings(bootstrap_servers="k1:9092", app_id="shop")
REFUSED = KafkaError(KafkaError._TRANSPORT, "k1:9092/bootstrap: Connect failed: refused")
ALL_DOWN = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")


class FakeClient:
    """A client whose metadata requests fail ``failures`` times, reporting ``errors`` to its
    ``error_cb`` on each poll, as librdkafka does."""

    def __init__(self, errors: BrokerErrors, reports: Sequence[KafkaError], failures: int) -> None:
        self.errors = errors
        self.reports = list(reports)
        self.failures = failures
        self.asked = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.asked += 1
        if self.asked <= self.failures:
            time.sleep(timeout)
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        return "metadata"

    def poll(self, timeout: float = -1) -> int:
        for error in self.reports:
            self.errors(error)
        self.reports.clear()
        return 0


def test_config_routes_errors_and_logs_through_streamer() -> None:
    errors = BrokerErrors()
    config = client_config(KAFKA, errors)
    assert config["bootstrap.servers"] == "k1:9092"
    assert config["client.id"] == "shop"
    assert config["error_cb"] is errors
    assert config["logger"].name == LIBRDKAFKA_LOGGER  # quieted with the other Kafka clients


def test_the_connection_failure_is_the_cause_not_the_all_down_summary() -> None:
    errors = BrokerErrors()
    for error in (REFUSED, ALL_DOWN, KafkaError(KafkaError._TRANSPORT, "later")):
        errors(error)
    assert errors.all_down
    assert errors.cause == "later"
    fresh = BrokerErrors()
    fresh(REFUSED)
    fresh(ALL_DOWN)
    assert fresh.cause == REFUSED.str()


def test_answers_after_a_few_tries() -> None:
    errors = BrokerErrors()
    client = FakeClient(errors, [REFUSED], failures=2)
    assert wait_reachable(client, errors, KAFKA, timeout_s=5) == "metadata"
    assert client.asked == 3
    assert errors.cause is None  # what was said before it answered is over


def test_all_brokers_down_fails_at_once_naming_the_cause() -> None:
    errors = BrokerErrors()
    client = FakeClient(errors, [REFUSED, ALL_DOWN], failures=1000)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"cannot reach k1:9092: .*Connect failed: refused"):
        wait_reachable(client, errors, KAFKA, timeout_s=30)
    assert time.monotonic() - started < 5
    assert client.asked == 1


def test_silence_fails_when_the_time_is_up() -> None:
    errors = BrokerErrors()
    client = FakeClient(errors, [], failures=1000)
    started = time.monotonic()
    with pytest.raises(TransientError, match="Failed to get metadata"):
        wait_reachable(client, errors, KAFKA, timeout_s=0.3)
    assert time.monotonic() - started < 5


def test_refused_credentials_are_a_configuration_error() -> None:
    errors = BrokerErrors()
    denied = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: bad password")
    client = FakeClient(errors, [denied], failures=1000)
    with pytest.raises(ConfigError, match="refused the credentials: SASL authentication error"):
        wait_reachable(client, errors, KAFKA, timeout_s=30)
