"""The ingest agent's loop helpers: stop taking batches when told, never half-submit one; and
the agent itself, in faust's test context: what a batch produced is published before the
batch is acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import faust
import pytest

from streamer.core.errors import DecodeError
from streamer.core.messages import DeadLetter, LabelEvent, Verdict
from streamer.core.metrics import Health, Metrics
from streamer.ingest.agent import _unless, _until, ingest_agent
from streamer.ingest.records import IngestReport, Record


async def _endless() -> AsyncIterator[Sequence[Any]]:
    n = 0
    while True:
        await asyncio.sleep(0.01)
        n += 1
        yield [n]


def test_until_stops_when_an_event_is_set() -> None:
    async def scenario() -> list[Sequence[Any]]:
        failed, stopping = asyncio.Event(), asyncio.Event()
        seen = []
        async for batch in _until(_endless(), failed, stopping):
            seen.append(batch)
            if len(seen) == 3:
                asyncio.get_running_loop().call_soon(stopping.set)
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == [[1], [2], [3]]


def test_until_stops_while_waiting_for_a_batch() -> None:
    async def never() -> AsyncIterator[Sequence[Any]]:
        await asyncio.Event().wait()
        yield []

    async def scenario() -> int:
        failed = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, failed.set)
        return len([b async for b in _until(never(), failed)])

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == 0


def test_unless_gives_up_waiting_when_stopping() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        stop, slots = asyncio.Event(), asyncio.Semaphore(0)  # no room: the wait would block
        acquired = []

        async def submit() -> None:
            await slots.acquire()
            acquired.append(1)

        asyncio.get_running_loop().call_later(0.05, stop.set)
        done = await _unless(stop, submit())
        ready = await _unless(asyncio.Event(), asyncio.sleep(0))
        return done, ready, len(acquired)

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == (False, True, 0)


class Labelling:
    """Stands in for the pipeline: each batch stores its records, one dead letter for the first
    and a label event for each of the others."""

    def __init__(self) -> None:
        self.batches: list[list[Record]] = []

    async def process(self, records: Sequence[Record]) -> IngestReport:
        self.batches.append(list(records))
        report = IngestReport(received=len(records))
        first, *rest = records
        report.dead_letters.append(
            DeadLetter.from_error(
                DecodeError("corrupt", asset_id="x"),
                value=first.value or b"",
                key=first.key,
                topic=first.topic,
                partition=first.partition,
                offset=first.offset,
            )
        )
        report.labels += [
            LabelEvent(
                id=(r.value or b"").decode(),
                topology="text",
                model_version="text@1",
                media_type="text",
                labels={"cats": Verdict(score=0.8, label=True)},
                labelled_ms=1.0,
            )
            for r in rest
        ]
        return report


def test_label_events_are_published_before_the_batch_is_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, list[str], list[bool]]] = []
    puts: list[Any] = []

    def acked() -> list[bool]:
        return [bool(event.message.acked) for event in puts]

    async def publish_dead_letter(letter: DeadLetter) -> None:
        seen.append(("dead letter", [letter.value.decode()], acked()))

    async def publish_labels(events: Sequence[LabelEvent]) -> None:
        await asyncio.sleep(0.01)  # delivery takes a while: the acks wait for it
        seen.append(("labels", [e.id for e in events], acked()))

    metrics = Metrics()

    def progress() -> float | None:
        return metrics.registry.get_sample_value("streamer_last_progress_timestamp")

    async def scenario() -> list[bool]:
        app = faust.App("unit-agent", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
        monkeypatch.setattr(app.consumer, "highwater", lambda tp: None)  # not started
        uploads = app.topic("uploads", value_serializer="raw")
        pipeline = Labelling()
        ingest_agent(
            app, uploads, pipeline, publish_dead_letter,  # type: ignore[arg-type]
            take_size=3, take_wait_s=5.0, max_in_flight=1, metrics=metrics,
            health=Health(stall_s=60), publish_labels=publish_labels,
        )  # fmt: skip
        async with app.agents["ingest"].test_context() as agent:
            for value in (b"a", b"b", b"c"):
                puts.append(await agent.put(value))
            while not progress():  # the batch finished: acknowledged, then counted
                await asyncio.sleep(0.01)
        assert [[r.value for r in batch] for batch in pipeline.batches] == [[b"a", b"b", b"c"]]
        return acked()

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [True, True, True]
    labelled = {"outcome": "labelled"}
    assert metrics.registry.get_sample_value("streamer_items_total", labelled) == 2
    assert seen == [
        ("dead letter", ["a"], [False, False, False]),
        ("labels", ["b", "c"], [False, False, False]),
    ]
