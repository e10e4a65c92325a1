"""Tombstones of retired versions: set, lifted, and remembered while Redis is unreadable."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from streamer.rollout.registry import Registry
from streamer.testing import InMemoryVectorStore, fake_topology

TEXT = fake_topology("text", "text")


class Strings:
    """The subset of the Redis client that tombstones use; ``down`` makes every call fail."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("fake redis is down")

    def register_script(self, script: str) -> Any:
        return None

    def set(self, key: str, value: str) -> None:
        self._check()
        self.values[key] = value

    def delete(self, *keys: str) -> int:
        self._check()
        return sum(self.values.pop(k, None) is not None for k in keys)

    def exists(self, key: str) -> int:
        self._check()
        return int(key in self.values)


@pytest.fixture
def strings() -> Strings:
    return Strings()


@pytest.fixture
def registry(strings: Strings) -> Registry:
    return Registry(strings, InMemoryVectorStore(), prefix="p")  # type: ignore[arg-type]


def test_a_retired_version_stays_retired_until_started_again(
    registry: Registry, strings: Strings
) -> None:
    assert not registry.retired(TEXT, "text@2")
    registry.mark_retired(TEXT, "text@2")
    assert list(strings.values) == ["p:retired:text:text@2"]  # no expiry: it outlives workers
    assert registry.retired(TEXT, "text@2")
    assert not registry.retired(TEXT, "text@1")
    registry.unmark_retired(TEXT, "text@2")
    assert not registry.retired(TEXT, "text@2")


def test_with_redis_unreadable_the_last_answer_holds(registry: Registry, strings: Strings) -> None:
    registry.mark_retired(TEXT, "text@2")
    assert registry.retired(TEXT, "text@2")
    assert not registry.retired(TEXT, "text@1")
    strings.down = True
    assert registry.retired(TEXT, "text@2")
    assert not registry.retired(TEXT, "text@1")
    assert not registry.retired(TEXT, "text@3")  # never seen: a retire needs Redis to happen
