"""Retrying a dependency that is down: back off, and honour what it says about coming back."""

import asyncio

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
