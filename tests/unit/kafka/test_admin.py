"""Creating topics: the missing ones only, a race lost counts as existing, a refusal is named."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamer.config.settings import KafkaSettings
from streamer.core.errors import StreamerError, TransientError
from streamer.kafka import admin
from streamer.kafka.admin import TopicsReport, create_missing_topics

KAFKA = KafkaSettings(bootstrap_servers="k1:9092")


class FakeAdmin:
    """An admin client over a cluster holding ``topics``; ``answers`` maps a topic to the error
    its creation meets."""

    def __init__(self, topics: set[str], answers: dict[str, KafkaError] | None = None) -> None:
        self.topics = topics
        self.answers = answers or {}
        self.asked: list[Any] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={name: object() for name in self.topics})

    def poll(self, timeout: float = -1) -> int:
        return 0

    def create_topics(self, new_topics: list[Any], **timeouts: float) -> dict[str, Future[None]]:
        self.asked.extend(new_topics)
        futures = {}
        for spec in new_topics:
            future: Future[None] = Future()
            error = self.answers.get(spec.topic)
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(error))
            futures[spec.topic] = future
        return futures


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeAdmin) -> FakeAdmin:
    monkeypatch.setattr(admin, "AdminClient", lambda config: fake)
    return fake


def create(names: list[str]) -> TopicsReport:
    return create_missing_topics(
        KAFKA, names, partitions=6, replication_factor=3, configs={"min.insync.replicas": "2"}
    )


def test_only_the_missing_topics_are_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeAdmin({"uploads", "other"}))
    report = create(["uploads", "deadletter", "results", "uploads"])
    assert report == TopicsReport(created=("deadletter", "results"), existing=("uploads",))
    assert [spec.topic for spec in fake.asked] == ["deadletter", "results"]
    spec = fake.asked[0]
    assert (spec.num_partitions, spec.replication_factor) == (6, 3)
    assert spec.config == {"min.insync.replicas": "2"}


def test_nothing_missing_nothing_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeAdmin({"uploads"}))
    assert create(["uploads"]) == TopicsReport(created=(), existing=("uploads",))
    assert fake.asked == []


def test_a_topic_created_meanwhile_by_another_counts_as_existing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raced = KafkaError(KafkaError.TOPIC_ALREADY_EXISTS, "Topic 'results' already exists.")
    install(monkeypatch, FakeAdmin(set(), {"results": raced}))
    report = create(["uploads", "results"])
    assert report == TopicsReport(created=("uploads",), existing=("results",))


def test_a_refused_topic_is_named_with_what_was_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = KafkaError(KafkaError.INVALID_REPLICATION_FACTOR, "3 replicas, 1 broker")
    install(monkeypatch, FakeAdmin(set(), {"uploads": refused}))
    with pytest.raises(StreamerError, match="cannot create topic 'uploads': 3 replicas") as raised:
        create(["uploads"])
    assert not isinstance(raised.value, TransientError)
    assert "6 partitions, 3 replicas" in str(raised.value)


def test_a_broker_busy_elsewhere_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = KafkaError(KafkaError.REQUEST_TIMED_OUT, "request timed out")
    install(monkeypatch, FakeAdmin(set(), {"uploads": busy}))
    with pytest.raises(TransientError, match="cannot create topic 'uploads'"):
        create(["uploads"])
