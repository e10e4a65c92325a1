"""A ``Rollouts`` on the Redis at 127.0.0.1:6379 (the registry's compare-and-set is a Lua
script), under a key prefix of its own, with the in-memory vector store; ``text@2`` started."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamer.config.settings import FetchSettings, load_settings
from streamer.rollout.commands import Rollouts
from streamer.runner.context import Context
from streamer.runner.plans import Plans
from streamer.testing import InMemoryVectorStore, fake_topology

TEXT = fake_topology("text", "text")
V1, V2 = "text@1", "text@2"


@pytest.fixture
def rollouts(tmp_path: Path) -> Iterator[Rollouts]:
    prefix = f"unit-promote-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        {"STREAMER_REDIS_KEY_PREFIX": prefix, "STREAMER_STACK_STATE_DIR": str(tmp_path)},
        use_stack=False,
    )
    try:
        redis.Redis.from_url(settings.redis.url).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {settings.redis.url}: {exc}")
    plans = Plans(Context(FetchSettings(), device="cpu"))
    rollouts = Rollouts(settings, [TEXT], plans=plans)
    store = InMemoryVectorStore()
    rollouts.store = rollouts.registry.store = store
    store.ensure_collection(rollouts.collection(TEXT, V1), 8, alias=TEXT.alias(), model_version=V1)
    rollouts.start("text", V2)
    try:
        yield rollouts
    finally:
        for key in rollouts.client.scan_iter(match=f"{prefix}:*"):
            rollouts.client.delete(key)
        rollouts.close()
