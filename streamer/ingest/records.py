"""What the ingest path takes and gives: consumed records in, a report of one batch out."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamer.core.messages import DeadLetter, LabelEvent

__all__ = ["IngestReport", "Record", "attempts_header"]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    attempts: int = 0  # how often it failed before (a replayed dead letter carries its count)


def attempts_header(headers: Any) -> int:
    """The ``x-attempts`` of a record's headers (a mapping or a list of pairs), else 0."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for name, value in pairs:
        if name == "x-attempts":
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


@dataclass(slots=True)
class IngestReport:
    """What one batch did: counts, dead letters, label events, and seconds spent per stage."""

    received: int = 0
    embedded: int = 0
    skipped: int = 0
    reused: int = 0
    upserted: int = 0
    deleted: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: what the attached classifiers said of the rows stored (for ``media.labels``)
    labels: list[LabelEvent] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: seconds threads spent running each stage's code (:meth:`Runner.run`'s ``busy``)
    busy: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, started: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "reused": self.reused,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "dead_lettered": len(self.dead_letters),
            "labelled": len(self.labels),
        }
