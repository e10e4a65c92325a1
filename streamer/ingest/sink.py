"""The end of a batch: rows upserted into a model version's collection.

A store that is down is retried until it answers (the batch is acknowledged only after), and
a row the store refuses for good is isolated: the rest of the batch is stored, that asset goes
to the dead letters with stage ``sink``. Isolation bisects a refused batch instead of trying
its rows one by one: one bad row among 4,000 costs at most 1 + 2 * 12 = 25 upserts, not 4,000,
and a batch refused only for its size (over the server's message limit) is split until it
fits. Rows stored before a refusal are upserted again, which an upsert by id allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamer.core.errors import SinkError
from streamer.ingest.changes import Content, Io
from streamer.ingest.intake import dead_letter
from streamer.ingest.records import IngestReport
from streamer.runner.operator import Part, Vector
from streamer.storage.store import VectorRow, VectorStore, with_parts

__all__ = ["Sink", "row_of", "rows_of"]


def row_of(content: Content, vector: Vector, *, version: str, media_type: str) -> VectorRow:
    upload = content.asset.upload
    return VectorRow(
        id=upload.id,
        vector=vector,
        content_hash=content.content_hash,
        model_version=version,
        media_type=media_type,
        uri=upload.uri or "",
        text=upload.text or "",
        metadata=upload.metadata,
    )


def rows_of(
    content: Content, vector: Vector, parts: Sequence[Part], *, version: str, media_type: str
) -> list[VectorRow]:
    """The asset's row, then one per part (see :func:`~streamer.storage.store.with_parts`)."""
    return with_parts(row_of(content, vector, version=version, media_type=media_type), parts)


class Sink:
    def __init__(self, store: VectorStore, io: Io) -> None:
        self.store = store
        self.io = io

    async def write(
        self, collection: str, rows: Sequence[VectorRow], contents: Sequence[Content],
        report: IngestReport,
    ) -> list[Content]:  # fmt: skip
        """Upsert ``rows`` (``contents``: the content of each); returns the contents of the rows
        stored, in order (one per row: an asset with parts has several)."""
        if not rows:
            return []
        try:
            await self.io("upsert", lambda: self.store.upsert(collection, rows))
            return list(contents)
        except SinkError as exc:
            if len(rows) == 1:
                error = exc.for_asset(rows[0].id)
                report.dead_letters.append(dead_letter(contents[0].asset.record, error))
                return []
        half = len(rows) // 2
        first = await self.write(collection, rows[:half], contents[:half], report)
        return first + await self.write(collection, rows[half:], contents[half:], report)
