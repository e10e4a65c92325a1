"""Workers' presence records: written with a TTL, read back, and what a promotion makes of them."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest

from streamer.rollout.presence import TTL_S, Presence, Readiness, presence_record


class Keys:
    """The subset of the Redis client that presence records use."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttl_ms: dict[str, int] = {}

    def set(self, key: str, value: str, px: int | None = None) -> None:
        self.values[key] = value.encode()
        if px is not None:
            self.ttl_ms[key] = px

    def delete(self, *keys: str) -> int:
        return sum(self.values.pop(k, None) is not None for k in keys)

    def scan_iter(self, match: str, count: int = 10) -> Iterator[bytes]:
        return iter([k.encode() for k in self.values if fnmatch.fnmatchcase(k, match)])

    def mget(self, keys: list[Any]) -> list[bytes | None]:
        return [self.values.get(k.decode() if isinstance(k, bytes) else k) for k in keys]


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def presence(keys: Keys) -> Presence:
    return Presence(keys, prefix="p")  # type: ignore[arg-type]


def test_a_record_lapses_unless_refreshed_and_goes_when_the_worker_stops(
    presence: Presence, keys: Keys
) -> None:
    record = presence_record(
        "w1", ["ingest", "search"], {"text": ["text@1", "text@2"]}, loading={"image": ["image@2"]}
    )
    presence.publish(record)
    assert keys.ttl_ms == {"p:workers:w1": int(TTL_S * 1000)}
    assert presence.live() == [record]
    presence.remove("w1")
    assert presence.live() == []


def test_only_this_prefix_and_readable_records_count(presence: Presence, keys: Keys) -> None:
    presence.publish(presence_record("w1", ["search"], {"text": ["text@1"]}))
    Presence(keys, prefix="other").publish(  # type: ignore[arg-type]
        presence_record("w9", ["search"], {"text": ["text@1"]})
    )
    keys.set("p:workers:broken", "{not json")
    assert [w.worker for w in presence.live()] == ["w1"]


def test_readiness_names_the_workers_not_ready_and_why(presence: Presence) -> None:
    presence.publish(presence_record("w1", ["ingest"], {"text": ["text@1", "text@2"]}))
    presence.publish(presence_record("w2", ["search"], {"text": ["text@1", "text@2"]}))
    loading = presence_record("w3", ["search"], {"text": ["text@1"]}, loading={"text": ["text@2"]})
    presence.publish(loading)
    presence.publish(presence_record("w4", ["search"], {"image": ["image@1"]}))  # serves no text
    readiness = presence.readiness("text", "text@2")
    assert not readiness.done
    assert [w.worker for w in readiness.ready] == ["w1", "w2"]
    assert readiness.describe() == ("2 of 3 live workers hold text@2 warm; not ready: w3 (loading)")


def test_a_failed_load_and_a_version_not_seen_yet_are_told_apart(presence: Presence) -> None:
    failed = {"text": {"text@2": "OSError: no weights"}}
    presence.publish(presence_record("w1", ["search"], {"text": ["text@1"]}, failed=failed))
    presence.publish(presence_record("w2", ["search"], {"text": ["text@1"]}))
    assert presence.readiness("text", "text@2").describe() == (
        "0 of 2 live workers hold text@2 warm; not ready: w1 (failed: OSError: no weights), "
        "w2 (not seen yet)"
    )


def test_no_live_worker_is_nothing_to_wait_for() -> None:
    readiness = Readiness("text", "text@2", ())
    assert readiness.done
    assert readiness.describe() == "no live worker serves 'text'"
