"""The one runner: fused CPU stages ahead of the model, model chunks, errors carried."""

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamer.config.settings import FetchSettings
from streamer.core.errors import EmbedError, StageError
from streamer.runner.context import Context
from streamer.runner.operator import VECTOR, CpuOperator, Source
from streamer.runner.plan import bind
from streamer.runner.runner import Runner
from streamer.testing import FakeEmbed, FakeModel, fake_topology, tally

POOL = ThreadPoolExecutor(2)


def _plan(tmp_path: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    topology = fake_topology("t", "text", **kwargs)
    return topology, bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,))))


def test_a_batch_in_chunks_of_the_model_size_errors_carried_to_the_end(tmp_path: Path) -> None:
    topology, plan = _plan(tmp_path, dim=4, batch=3)
    (tmp_path / "ok.txt").write_text("from a file")
    sources = [Source(text=f"text {i}") for i in range(5)] + [
        Source(text="bad content"),
        Source(uri=(tmp_path / "ok.txt").as_uri()),
        Source(uri=(tmp_path / "missing.txt").as_uri()),
        Source(text="boom goes the model"),
    ]
    timings: dict[str, float] = {}
    ids = [f"a{i}" for i in range(len(sources))]
    out = asyncio.run(Runner(POOL, POOL).run(plan, sources, ids=ids, timings=timings))
    assert len(out) == len(sources)
    errors = {i: o for i, o in enumerate(out) if isinstance(o, StageError)}
    assert {i: e.stage for i, e in errors.items()} == {5: "decode", 7: "fetch", 8: "embed"}
    assert errors[5].asset_id == "a5" and "asset 'a5'" in str(errors[5])
    for i, vector in enumerate(out):
        if i not in errors:
            assert vector.shape == (4,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    # chunks of at most 3 live items; the failing chunk was retried item by item
    assert max(tally(topology).batches) <= 3
    assert set(timings) == {"fetch", "embed"}


def test_first_and_last_run_part_of_the_chain(tmp_path: Path) -> None:
    _, plan = _plan(tmp_path)
    runner = Runner(POOL, POOL)
    fetched = asyncio.run(runner.run(plan, [Source(text="hello")], last=1))
    assert fetched == [b"hello"]
    (vector,) = asyncio.run(runner.run(plan, fetched, first=1))
    (whole,) = asyncio.run(runner.run(plan, [Source(text="hello")]))
    assert np.array_equal(vector, whole)


class Spoil(CpuOperator[Any, Any]):
    """Breaks what the topology gives: a vector of another length, or not finite."""

    name = "spoil"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError

    def __init__(self, vector: np.ndarray) -> None:
        self.vector = vector

    def apply(self, item: Any) -> Any:
        return self.vector


def test_what_the_last_stage_gives_is_checked(tmp_path: Path) -> None:
    context = Context(FetchSettings(media_roots=(tmp_path,)))
    for spoiled, message in ((np.ones(5), "shape (5,), expected (3,)"),
                             (np.full(3, np.nan), "non-finite"),
                             ({"not": "a vector"}, "gave dict, not a vector")):  # fmt: skip
        topology = fake_topology("t", "text", dim=3).replacing(normalize=Spoil(spoiled))
        out = asyncio.run(Runner(POOL, POOL).run(bind(topology, None, context), [Source(text="x")]))
        assert isinstance(out[0], EmbedError) and message in str(out[0])


def test_a_runner_with_pools_of_its_own_shuts_them_down(tmp_path: Path) -> None:
    _, plan = _plan(tmp_path)
    runner = Runner.with_threads(2, 1, name="t")
    assert asyncio.run(runner.run(plan, [])) == []
    runner.close()
    assert runner.cpu_pool._shutdown  # type: ignore[attr-defined]


def test_an_inline_runner_runs_every_stage_in_the_calling_thread(tmp_path: Path) -> None:
    import threading

    seen: set[str] = set()

    class Where(CpuOperator[Any, Any]):
        name = "where"
        takes = VECTOR
        gives = VECTOR
        error = EmbedError

        def apply(self, item: Any) -> Any:
            seen.add(threading.current_thread().name)
            return item

    topology = fake_topology("t", "text").replacing(normalize=Where())
    plan = bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,))))
    inline = Runner.inline()
    out = asyncio.run(inline.run(plan, [Source(text="a"), Source(text="bad one")]))
    assert out[0].shape == (8,) and isinstance(out[1], StageError)
    assert seen == {threading.current_thread().name}
    inline.close()


class SlowModel(FakeModel):
    def __call__(self, batch: Sequence[bytes]) -> np.ndarray:
        time.sleep(0.05)
        return super().__call__(batch)


@dataclass(frozen=True)
class SlowEmbed(FakeEmbed):
    def load(self, device: str, precision: str) -> SlowModel:
        return SlowModel(self.dim, self.tally)


def test_busy_seconds_leave_out_the_waits_for_a_free_thread(tmp_path: Path) -> None:
    topology = fake_topology("t", "text", dim=4, batch=2)
    slow = topology.replacing(embed=SlowEmbed(4, batch=topology.stages[2].batch))
    plan = bind(slow, None, Context(FetchSettings(media_roots=(tmp_path,))))
    timings: dict[str, float] = {}
    busy: dict[str, float] = {}
    one_model_thread = ThreadPoolExecutor(1)
    sources = [Source(text=f"text {i}") for i in range(6)]
    asyncio.run(Runner(POOL, one_model_thread).run(plan, sources, timings=timings, busy=busy))
    # three chunks of 2 at once, one model thread: the calls ran one after another, so the
    # chunks waited 0, 1 and 2 calls before their own
    assert busy["embed"] >= 3 * 0.05
    assert timings["embed"] >= busy["embed"] + 3 * 0.05
    assert set(busy) == {"fetch", "embed"}  # fetch and the fused decode run as one segment
