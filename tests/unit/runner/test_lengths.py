"""Model calls cut by input length: like lengths together, within a size and a token budget."""

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from operators.fetch import Fetch
from operators.normalize import Normalize
from streamer.config.settings import FetchSettings
from streamer.core.errors import StageError
from streamer.runner.context import Context
from streamer.runner.lengths import length_chunks, lengths_of
from streamer.runner.operator import (
    BatchPolicy,
    BoundModel,
    Source,
)
from streamer.runner.plan import bind
from streamer.runner.runner import Runner
from streamer.runner.shapes import ShapedModel
from streamer.runner.topology import Topology
from streamer.testing import FakeDecode, FakeEmbed, FakeModel, Tally


def test_items_are_sorted_by_length_and_cut_at_the_size() -> None:
    lengths = [5, 1, 9, 1, 5, 3]
    chunks = length_chunks(range(10, 16), lengths, 2, fill=0.0)
    assert chunks == [[11, 13], [15, 10], [14, 12]]  # ties keep their order


def test_a_call_is_cut_where_padding_would_pass_a_fifth_of_it() -> None:
    lengths = [10, 10, 11, 12, 40, 40, 41, 100, 20]
    chunks = length_chunks(range(9), lengths, 8)
    # 10, 10, 11, 12: 43 real of 48 padded; adding 20 would make 63 of 100: cut
    assert chunks == [[0, 1, 2, 3], [8], [4, 5, 6], [7]]
    for chunk in chunks:
        longest = max(lengths[i] for i in chunk)
        assert sum(lengths[i] for i in chunk) >= 0.8 * len(chunk) * longest
    # texts of one length keep the batch size
    assert length_chunks(range(64), [19 + i % 4 for i in range(64)], 32) == [
        sorted(range(64), key=lambda i: i % 4)[:32],
        sorted(range(64), key=lambda i: i % 4)[32:],
    ]


def test_nothing_to_cut_and_mismatched_lengths() -> None:
    assert length_chunks([], [], 4, 10) == []
    with pytest.raises(ValueError, match="2 indices but 1 lengths"):
        length_chunks([1, 2], [3], 4, 10)


class Lengthy(FakeModel):
    """The fake model, whose inputs' lengths are their byte counts; each call's lengths are
    recorded. ``broken`` makes reading lengths fail."""

    def __init__(self, dim: int, tally: Tally, broken: bool = False) -> None:
        super().__init__(dim, tally)
        self.broken = broken
        self.seen: list[list[int]] = []
        self.lock = threading.Lock()

    def lengths(self, batch: Sequence[bytes]) -> list[int]:
        if self.broken:
            raise TypeError("no length for that")
        return [len(item) for item in batch]

    def __call__(self, batch: Sequence[bytes]) -> npt.NDArray[np.float32]:
        with self.lock:
            self.seen.append([len(item) for item in batch])
        return super().__call__(batch)


@dataclass(frozen=True)
class LengthyEmbed(FakeEmbed):
    """The fake embed stage, loading :class:`Lengthy` models (kept in ``loaded``)."""

    broken: bool = False
    loaded: list[Lengthy] = field(default_factory=list, compare=False)

    def load(self, device: str, precision: str) -> Lengthy:
        self.loaded.append(Lengthy(self.dim, self.tally, self.broken))
        return self.loaded[-1]


def _plan(tmp_path: Path, embed: LengthyEmbed, batch: int = 4):  # type: ignore[no-untyped-def]
    topology = Topology(
        name="t",
        media_type="text",
        stages=(Fetch(), FakeDecode(), embed, Normalize()),
        model_version="t@1",
    )
    return bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,))))


TEXTS = ["a" * n for n in (30, 2, 17, 3, 29, 2, 16, 31, 4, 18)] + ["boom!"]


def test_a_model_with_lengths_runs_like_lengths_together_and_gives_the_same_vectors(
    tmp_path: Path,
) -> None:
    embed = LengthyEmbed(batch=BatchPolicy(4, 10))
    plan = _plan(tmp_path, embed)
    sources = [Source(text=t) for t in TEXTS]
    with ThreadPoolExecutor(2) as pool:
        cut = asyncio.run(Runner(pool, pool).run(plan, sources))
        model = embed.loaded[-1]
        calls, model.seen = model.seen, []
        arrival = asyncio.run(Runner(pool, pool, by_length=False).run(plan, sources))
    # like lengths together, at most 4 a call; the call with "boom!" is retried item by item
    assert sorted(calls) == sorted(
        [[2, 2], [3, 4, 5], [3], [4], [5], [16, 17, 18], [29, 30, 31]]
    )  # fmt: skip
    assert model.seen != calls  # arrival order mixes lengths
    for ours, theirs in zip(cut[:-1], arrival[:-1], strict=True):
        assert np.array_equal(ours, theirs)  # in input order either way
    assert isinstance(cut[-1], StageError) and cut[-1].stage == "embed"


def test_unreadable_lengths_fall_back_to_arrival_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embed = LengthyEmbed(broken=True, batch=BatchPolicy(4, 10))
    plan = _plan(tmp_path, embed)
    with ThreadPoolExecutor(2) as pool, caplog.at_level(logging.WARNING):
        out = asyncio.run(Runner(pool, pool).run(plan, [Source(text=t) for t in TEXTS[:8]]))
    assert all(not isinstance(o, StageError) for o in out)
    assert sorted(embed.loaded[-1].seen) == sorted([[30, 2, 17, 3], [29, 2, 16, 31]])
    assert "input lengths unreadable" in caplog.text


def test_lengths_are_found_through_the_wrappers_a_plan_puts_around_a_model() -> None:
    model = Lengthy(8, Tally())
    shaped = ShapedModel(model, (2, 4), label="t@1:embed")
    assert lengths_of(model) is model and lengths_of(shaped) is model
    assert lengths_of(BoundModel(LengthyEmbed(), shaped)) is model
    assert lengths_of(FakeModel(8, Tally())) is None
    assert lengths_of(ShapedModel(FakeModel(8, Tally()), (), label="x")) is None
