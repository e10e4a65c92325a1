"""The rollout registry against the real Redis: compare-and-set, forward-only checkpoints."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from streamer.rollout.registry import Registry, RolloutConflict
from streamer.testing import InMemoryVectorStore
from topologies import TEXT

pytestmark = pytest.mark.integration


@pytest.fixture
def registry() -> Iterator[Registry]:
    client = redis.Redis.from_url(os.environ.get("STREAMER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    yield Registry(client, InMemoryVectorStore(), prefix=prefix)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_defaults_before_anything_is_indexed(registry: Registry) -> None:
    state = registry.read(TEXT)
    assert (state.serving, state.candidate, state.previous, state.epoch) == (
        TEXT.model_version, None, None, 0,
    )  # fmt: skip
    assert state.targets() == [TEXT.model_version]


def test_a_stale_writer_cannot_overwrite_a_newer_state(registry: Registry) -> None:
    seen_by_both = registry.read(TEXT).epoch
    registry.change(TEXT, seen_by_both, candidate="minilm-l6-cls@2")
    with pytest.raises(RolloutConflict):
        registry.change(TEXT, seen_by_both, candidate=None)  # the late one
    state = registry.read(TEXT)
    assert state.candidate == "minilm-l6-cls@2"
    assert state.epoch == seen_by_both + 1
    assert state.targets() == [TEXT.model_version, "minilm-l6-cls@2"]


def test_the_serving_version_is_the_alias_target(registry: Registry) -> None:
    store = registry.store
    assert isinstance(store, InMemoryVectorStore)
    name = TEXT.collection_name("minilm-l6-cls@2")
    store.ensure_collection(name, 8, model_version="minilm-l6-cls@2")
    store.point_alias(TEXT.alias(), name)
    assert registry.read(TEXT).serving == "minilm-l6-cls@2"


def test_checkpoints_only_move_forward(registry: Registry) -> None:
    assert registry.checkpoint(TEXT, "v") == 0
    assert registry.advance(TEXT, "v", 40) == 40
    assert registry.advance(TEXT, "v", 20) == 40  # a late, slower run cannot move it back
    assert registry.checkpoint(TEXT, "v") == 40
