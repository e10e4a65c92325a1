"""Retrying a dependency that is down: back off, and honour what it says about coming back."""

import asyncio
import logging

import pytest

from streamer.core.errors import TransientError
from streamer.core.retry import retry_transient


def test_backoff_grows_and_retry_after_is_honoured() -> None:
    pauses: list[float] = []
    failures = [
        TransientError("milvus", "down"),
        TransientError("milvus", "down"),
        TransientError("kafka", "throttled", retry_after_s=7.0),
        TransientError("milvus", "down", retry_after_s=100.0),
    ]

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    result = asyncio.run(retry_transient("upsert", attempt, max_pause_s=30.0, sleep=sleep))
    assert result == "done"
    assert pauses == [0.5, 1.0, 7.0, 30.0]  # backoff, then the advice, capped


def test_the_advice_appears_in_the_message() -> None:
    assert "retry after 2.0s" in str(TransientError("redis", "loading", retry_after_s=2.0))
    assert "retry" not in str(TransientError("redis", "gone"))


def test_an_outage_is_said_once_then_summarised_then_said_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.core.retry")
    now = [0.0]
    failures = [TransientError("milvus", "connection refused") for _ in range(25)]

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    async def sleep(seconds: float) -> None:
        now[0] += 3.0  # a retry every 3 s, whatever the pause asked for

    result = asyncio.run(retry_transient("upsert text", attempt, sleep=sleep, clock=lambda: now[0]))
    assert result == "done"
    lines = [(r.levelname, r.getMessage().removeprefix("upsert text: ")) for r in caplog.records]
    assert lines == [  # 25 failed attempts in 75 s: four lines, not 25
        ("WARNING", "milvus unavailable: connection refused; retrying until it is back"),
        ("WARNING", "milvus unavailable for 30 s, 11 attempts (last: connection refused)"),
        ("WARNING", "milvus unavailable for 60 s, 21 attempts (last: connection refused)"),
        ("INFO", "milvus back after 75 s, 25 retries"),
    ]
    phases = [(r.dependency, r.outage) for r in caplog.records]  # type: ignore[attr-defined]
    assert phases == [("milvus", p) for p in ("began", "ongoing", "ongoing", "over")]


def test_nothing_is_said_when_the_dependency_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamer.core.retry")

    async def attempt() -> int:
        return 7

    assert asyncio.run(retry_transient("count", attempt)) == 7
    assert caplog.records == []
