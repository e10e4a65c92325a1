"""The one runner: executes a plan's stages for a micro-batch.

Ingest, query embedding, rollout backfill and compare, local runs and the benchmarks all call
:meth:`Runner.run`. For a batch of items it

- starts the leading CPU segment (say fetch, or decode and preprocess, fused) for every item
  at once in the CPU pool, so decoding runs ahead of the model;
- cuts the items into chunks of the first model stage's batch size (calibrated or declared);
  each chunk goes to the model pool as soon as its items are ready, as many at once as the pool
  has threads (model streams); later CPU segments run per item in the CPU pool, later model
  stages in chunks of their own size; a model stage that prepares the next one's inputs (JPEG
  decode on the GPU) runs on the prepare pool, so it overlaps the model;
- for a model whose inputs have lengths (texts: :mod:`streamer.runner.lengths`), waits for
  every item's leading segment, then cuts the live items by length instead (like lengths
  together, little padding a call);
- carries a failed item as its typed error to the end, naming its asset; the others go on;
- checks what the last stage gives: one finite vector of the plan's length per item.

It keeps nothing between calls but its pools. Slots are replaced as stages run, so a batch's
fetched bytes are freed once decoded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from streamer.core.errors import EmbedError, StageError
from streamer.runner.lengths import HasLengths, length_chunks, lengths_of
from streamer.runner.operator import Part, WithParts
from streamer.runner.plan import Plan, Segment, Stage

T = TypeVar("T")

__all__ = ["InlineExecutor", "Runner", "declared_batch_size"]

log = logging.getLogger(__name__)


def declared_batch_size(plan: Plan, stage: Stage) -> int:
    """The batch size a model stage declares."""
    assert stage.model is not None
    return stage.model.operator.batch.max_batch_size


class InlineExecutor(Executor):
    """Runs what it is given at once, in the calling thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class Runner:
    """Runs plans on a CPU pool and a model pool (``prepare_pool``, default the model pool, for
    model stages that prepare the next one's inputs); ``batch_size`` says how many items one
    call of a model stage takes (default: what the stage declares); ``by_length=False`` cuts
    even a model with input lengths in arrival order (the benchmark's comparison)."""

    def __init__(
        self,
        cpu_pool: Executor,
        model_pool: Executor,
        *,
        batch_size: Callable[[Plan, Stage], int] = declared_batch_size,
        prepare_pool: Executor | None = None,
        by_length: bool = True,
    ) -> None:
        self.cpu_pool = cpu_pool
        self.model_pool = model_pool
        self.prepare_pool = prepare_pool or model_pool
        self.batch_size = batch_size
        self.by_length = by_length

    @classmethod
    def with_threads(
        cls,
        cpu_threads: int,
        model_threads: int = 1,
        *,
        name: str = "runner",
        batch_size: Callable[[Plan, Stage], int] = declared_batch_size,
    ) -> Runner:
        """A runner owning pools of its own (shut down by :meth:`close`)."""
        return cls(
            ThreadPoolExecutor(cpu_threads, f"{name}-cpu"),
            ThreadPoolExecutor(model_threads, f"{name}-model"),
            batch_size=batch_size,
        )

    @classmethod
    def inline(cls, *, batch_size: Callable[[Plan, Stage], int] = declared_batch_size) -> Runner:
        """A runner that runs every stage in the calling thread, one after another: a per-item
        runtime (the benchmark's naive baseline), or something to step through in a debugger."""
        return cls(InlineExecutor(), InlineExecutor(), batch_size=batch_size)

    def close(self) -> None:
        """Shut the pools down; work already queued is dropped."""
        for pool in (self.cpu_pool, self.model_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    async def run(
        self,
        plan: Plan,
        inputs: Sequence[Any],
        *,
        ids: Sequence[str] | None = None,
        first: int = 0,
        last: int | None = None,
        timings: MutableMapping[str, float] | None = None,
        busy: MutableMapping[str, float] | None = None,
        parts: MutableMapping[int, tuple[Part, ...]] | None = None,
    ) -> list[Any]:
        """Stages ``first`` up to (not including) ``last`` on ``inputs``: one result per input,
        in order, each the output or the item's :class:`StageError` (naming ``ids[i]``). When
        the plan ends there, each output is the item's vector, and the vectors of its parts
        (:class:`~streamer.runner.operator.WithParts`) go to ``parts``, by input index.

        Seconds are added per stage label: to ``timings`` from a chunk's start of a stage to
        its end (waits for a free thread included, so chunks in flight together overlap), to
        ``busy`` only while a thread runs the stage's code."""
        values: list[Any] = list(inputs)
        segments = plan.segments(first, last)
        times: MutableMapping[str, float] = timings if timings is not None else {}
        working: MutableMapping[str, float] = busy if busy is not None else {}
        if values and segments:
            await self._run_segments(plan, segments, values, times, working)
        if last is None or last >= len(plan.stages):
            self._check_vectors(plan, values, parts if parts is not None else {})
        if ids is not None:
            for i, value in enumerate(values):
                if isinstance(value, StageError):
                    values[i] = value.for_asset(ids[i])
        return values

    async def _run_segments(
        self,
        plan: Plan,
        segments: Sequence[Segment],
        values: list[Any],
        times: MutableMapping[str, float],
        busy: MutableMapping[str, float],
    ) -> None:
        loop = asyncio.get_running_loop()
        lead = segments[0] if segments[0].model is None else None
        rest = segments[1:] if lead is not None else segments
        first_model = next((s.model for s in rest if s.model is not None), None)
        size = self.batch_size(plan, first_model) if first_model is not None else len(values)
        if first_model is not None and self._lengths(first_model) is not None:
            size = len(values)  # one chunk: the model stage cuts it by length
        # the leading CPU segment starts for every item now: it runs ahead of the model
        ahead = (
            [loop.run_in_executor(self.cpu_pool, _clocked, lead.one, v) for v in values]
            if lead is not None
            else []
        )

        async def chunk(indices: range) -> None:
            if lead is not None:
                started = time.perf_counter()
                results = await asyncio.gather(*(ahead[i] for i in indices))
                _timed(times, lead.label, started)
                for i, (result, seconds) in zip(indices, results, strict=True):
                    values[i] = result
                    _add(busy, lead.label, seconds)
            for segment in rest:
                live = [i for i in indices if not isinstance(values[i], StageError)]
                if not live:
                    return
                started = time.perf_counter()
                if segment.model is not None:
                    await self._model(plan, segment, live, values, busy)
                else:
                    outs = await asyncio.gather(
                        *(
                            loop.run_in_executor(self.cpu_pool, _clocked, segment.one, values[i])
                            for i in live
                        )
                    )
                    for i, (out, seconds) in zip(live, outs, strict=True):
                        values[i] = out
                        _add(busy, segment.label, seconds)
                _timed(times, segment.label, started)

        step = max(1, size)
        await asyncio.gather(
            *(chunk(range(s, min(s + step, len(values)))) for s in range(0, len(values), step))
        )

    async def _model(
        self,
        plan: Plan,
        segment: Segment,
        live: list[int],
        values: list[Any],
        busy: MutableMapping[str, float],
    ) -> None:
        stage = segment.model
        assert stage is not None and stage.model is not None
        loop = asyncio.get_running_loop()
        size = max(1, self.batch_size(plan, stage))
        pool = self.prepare_pool if stage.model.operator.prepares else self.model_pool
        parts = await self._parts(stage, live, values, size)
        # every part at once: the pool's threads (model streams) bound how many run together
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, _clocked, stage.model, [values[i] for i in part])
                for part in parts
            )
        )
        for part, (outs, seconds) in zip(parts, results, strict=True):
            _add(busy, segment.label, seconds)
            for i, out in zip(part, outs, strict=True):
                values[i] = out

    async def _parts(
        self, stage: Stage, live: list[int], values: list[Any], size: int
    ) -> list[list[int]]:
        """The model calls for ``live`` items: in arrival order, ``size`` at a time, or cut by
        their lengths where the model has them (measured in the CPU pool, off the loop)."""
        measured = self._lengths(stage)
        if measured is None:
            return _in_order(live, size)
        loop = asyncio.get_running_loop()
        try:
            lengths = await loop.run_in_executor(
                self.cpu_pool, measured.lengths, [values[i] for i in live]
            )
            return length_chunks(live, lengths, size)
        except Exception as exc:  # the model call itself will name what is wrong with an item
            log.warning(
                "input lengths unreadable, model calls cut in arrival order",
                extra={"stage": stage.name, "error": f"{type(exc).__name__}: {exc}"},
            )
            return _in_order(live, size)

    def _lengths(self, stage: Stage) -> HasLengths | None:
        """The model of a stage whose calls are cut by its inputs' lengths, if they are."""
        return lengths_of(stage.model) if self.by_length else None

    @staticmethod
    def _check_vectors(
        plan: Plan, values: list[Any], parts: MutableMapping[int, tuple[Part, ...]]
    ) -> None:
        """What a topology gives must be a finite vector of the plan's length (each of its
        parts' too)."""
        for i, value in enumerate(values):
            if isinstance(value, StageError):
                continue
            parted = isinstance(value, WithParts)
            own, given = (value.vector, value.parts) if parted else (value, ())
            checked = [_checked(plan, own), *(_checked(plan, p.vector, p.key) for p in given)]
            error = next((c for c in checked if isinstance(c, EmbedError)), None)
            if error is not None:
                values[i] = error
                continue
            values[i] = checked[0]
            if given:
                parts[i] = tuple(
                    replace(part, vector=vector)
                    for part, vector in zip(given, checked[1:], strict=True)
                )


def _checked(plan: Plan, value: Any, part: str | None = None) -> Any:
    """``value`` as a float32 vector of the plan's length, or the error saying why not."""
    what = f"topology {plan.topology.name!r} gave" + (f" (part {part!r})" if part else "")
    try:
        vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return EmbedError(f"{what} {type(value).__name__}, not a vector: {exc}")
    if vector.shape != (plan.dim,):
        return EmbedError(f"{what} a vector of shape {vector.shape}, expected ({plan.dim},)")
    if not np.isfinite(vector).all():
        return EmbedError(f"{what} non-finite values")
    return vector


def _in_order(live: list[int], size: int) -> list[list[int]]:
    """``live`` cut into calls of ``size`` items, in arrival order."""
    return [live[start : start + size] for start in range(0, len(live), size)]


def _timed(times: MutableMapping[str, float], label: str, started: float) -> None:
    _add(times, label, time.perf_counter() - started)


def _add(times: MutableMapping[str, float], label: str, seconds: float) -> None:
    times[label] = times.get(label, 0.0) + seconds


def _clocked(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    """``fn(arg)`` and the seconds it ran, measured in the thread that runs it (added up on
    the event loop's thread, so no two threads write the same total)."""
    started = time.perf_counter()
    return fn(arg), time.perf_counter() - started
