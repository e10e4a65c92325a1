"""A rollout started again after a rollback walks everything again; one under way keeps its
checkpoint. (Redis at 127.0.0.1:6379 under a prefix of its own; the in-memory vector store.)"""

from __future__ import annotations

from streamer.rollout.commands import Rollouts
from tests.unit.rollout.conftest import TEXT, V2


def _walked_half(rollouts: Rollouts) -> str:
    key = f"{rollouts.registry.checkpoint_key(TEXT, V2)}:ids"
    rollouts.client.rpush(key, "a", "b", "c", "d")
    rollouts.registry.advance(TEXT, V2, 2)
    return key


def test_start_after_a_rollback_forgets_the_old_checkpoint(rollouts: Rollouts) -> None:
    key = _walked_half(rollouts)
    rollouts.rollback("text")
    rollouts.start("text", V2)
    assert rollouts.registry.checkpoint(TEXT, V2) == 0
    assert not rollouts.client.exists(key)  # the serving version is listed anew


def test_start_again_while_under_way_keeps_the_checkpoint(rollouts: Rollouts) -> None:
    key = _walked_half(rollouts)
    rollouts.start("text", V2)  # the same candidate: nothing new
    assert rollouts.registry.checkpoint(TEXT, V2) == 2
    assert rollouts.client.llen(key) == 4
