"""The batch contract every operator keeps: N items in, N results out, in order.

A result is either the operator's output or the :class:`~streamer.core.errors.StageError` of that one
item: bad input is data, so one corrupt upload never fails its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from streamer.core.errors import BatchContractError, StageError

__all__ = ["check_batch", "map_items"]

In = TypeVar("In")
Out = TypeVar("Out")


def check_batch(operator: str, items: Sequence[object], results: Sequence[Out]) -> list[Out]:
    """Return ``results`` as a list, or raise if the operator broke the N-in, N-out contract."""
    if len(results) != len(items):
        raise BatchContractError(operator, len(items), len(results))
    return list(results)


def map_items(fn: Callable[[In], Out], items: Sequence[In]) -> list[Out | StageError]:
    """Apply ``fn`` to each item, turning a :class:`StageError` into that item's result."""
    results: list[Out | StageError] = []
    for item in items:
        try:
            results.append(fn(item))
        except StageError as exc:
            results.append(exc)
    return results
