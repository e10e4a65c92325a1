"""The first step of a batch: records become assets routed to their topologies.

Every record is validated; the last message per asset id wins (a later upsert or delete
supersedes an earlier one in the same batch); an upsert goes to every served topology that
takes its media type; what cannot be parsed or routed becomes a ``validate`` dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamer.core.errors import InvalidMessage, StageError
from streamer.core.messages import DeadLetter, UploadMessage, parse_upload
from streamer.ingest.records import Record
from streamer.runner.operator import Source
from streamer.runner.topology import Topology

__all__ = ["Asset", "Intake", "dead_letter", "take_in"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Asset:
    """A validated upload and the record it came in."""

    record: Record
    upload: UploadMessage

    @property
    def id(self) -> str:
        return self.upload.id

    @property
    def source(self) -> Source:
        return (
            Source(uri=self.upload.uri)
            if self.upload.text is None
            else Source(text=self.upload.text)
        )


@dataclass(slots=True)
class Intake:
    deletes: list[Asset] = field(default_factory=list)
    upserts: dict[str, list[Asset]] = field(default_factory=dict)  # by topology name
    dead_letters: list[DeadLetter] = field(default_factory=list)


def dead_letter(record: Record, error: StageError) -> DeadLetter:
    """The dead letter of a record, logged with where it came from."""
    log.warning(
        "dead letter: %s (topic=%s partition=%d offset=%d)",
        error,
        record.topic,
        record.partition,
        record.offset,
    )
    return DeadLetter.from_error(
        error,
        value=record.value or b"",
        key=record.key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        attempts=record.attempts + 1,
    )


def take_in(records: Sequence[Record], topologies: Sequence[Topology]) -> Intake:
    intake = Intake()
    media = {t.media_type for t in topologies}
    latest: dict[str, Asset] = {}
    for record in records:
        try:
            upload = parse_upload(record.value)
        except InvalidMessage as exc:
            intake.dead_letters.append(dead_letter(record, exc))
            continue
        if upload.op == "upsert" and upload.media_type not in media:
            unrouted = InvalidMessage(
                f"media_type {upload.media_type!r} has no topology on this worker "
                f"(served: {sorted(media)})",
                asset_id=upload.id,
            )
            intake.dead_letters.append(dead_letter(record, unrouted))
            continue
        latest.pop(upload.id, None)  # a later message for the same id supersedes
        latest[upload.id] = Asset(record, upload)
    for asset in latest.values():
        if asset.upload.op == "delete":
            intake.deletes.append(asset)
            continue
        for topology in topologies:
            if topology.media_type == asset.upload.media_type:
                intake.upserts.setdefault(topology.name, []).append(asset)
    return intake
