"""Model calls cut by input length: texts of like length together, so padding stays small.

A transformer pads every input of a call to the call's longest, and its cost grows with that
length (attention more than linearly). Texts arrive in any order: one long message in a call
of short captions makes the whole call as slow as one of long messages. Measured on a 2-core
CPU (MiniLM-L6, texts of 3-200 words, median 34 tokens, takes of 96, calls of up to 32): 30
texts/s in arrival order, 107/s sorted by length and cut where padding would pass a fifth of a
call; texts of one length (the benchmark's 10-16 words) run as before.

A loaded model whose inputs have such a length says so by implementing :class:`HasLengths`.
The runner then sorts the live items of a take by length and cuts them with
:func:`length_chunks`: at most the stage's batch size items a call, and a new call wherever the
next item would leave less than :data:`FILL` of the call's padded tokens (items x the longest)
real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["FILL", "HasLengths", "length_chunks", "lengths_of"]

#: the least share of a call's padded tokens that are real ones
FILL = 0.8


@runtime_checkable
class HasLengths(Protocol):
    """A loaded model whose call costs grow with its inputs' length."""

    def lengths(self, batch: Sequence[Any], /) -> Sequence[int]:
        """Each input's length in the model's own units (tokens, after truncation)."""
        ...


def lengths_of(model: object) -> HasLengths | None:
    """``model`` (or the model a wrapper such as a shaped model calls) when its inputs have
    lengths, else ``None``."""
    while not isinstance(model, HasLengths):
        inner = getattr(model, "model", None)
        if inner is None or inner is model:
            return None
        model = inner
    return model


def length_chunks(
    indices: Sequence[int], lengths: Sequence[int], size: int, fill: float = FILL
) -> list[list[int]]:
    """``indices`` (with their ``lengths``, in the same order) sorted by length, shortest
    first (ties keep their order), and cut into chunks of at most ``size`` items in which the
    real lengths sum to at least ``fill`` x count x longest."""
    if len(indices) != len(lengths):
        raise ValueError(f"{len(indices)} indices but {len(lengths)} lengths")
    size = max(1, size)
    order = sorted(range(len(indices)), key=lambda k: lengths[k])
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for k in order:
        # sorted ascending: this item is the longest of the chunk if it joins
        count, longest = len(current) + 1, max(1, lengths[k])
        if current and (count > size or (real + lengths[k]) / (count * longest) < fill):
            chunks.append(current)
            current, real = [], 0
        current.append(indices[k])
        real += lengths[k]
    if current:
        chunks.append(current)
    return chunks
