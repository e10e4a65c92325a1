"""Change detection: which assets of a batch need the model, which only a new row, which
nothing at all.

An asset's *row digest* covers its content hash, uri and metadata. Per model version's
collection, Redis remembers the digest of each stored row, which asset holds each content, and
the *source digest* (a local file's size, time and inode, with uri and metadata) that a row was
made from. Redis only saves work: whatever it does not know (flushed, down) is asked of the
vector store, which gives the same answer, at the cost of a query or a model call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streamer.core.digests import row_digest
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.intake import Asset
from streamer.runner.operator import Vector
from streamer.storage.store import StoredRow, VectorStore

__all__ = ["ChangeDetector", "Changes", "Content", "Io"]

T = TypeVar("T")
#: runs blocking store work off the event loop, retrying while the store is unavailable
Io = Callable[[str, Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Content:
    """A fetched asset: what it holds (hash) and what its row would record (digests)."""

    asset: Asset
    content_hash: str
    digest: str
    source_digest: str = ""  # empty when the source cannot be checked without reading it


@dataclass(slots=True)
class Changes:
    current: list[Content] = field(default_factory=list)  # stored row is up to date
    reuse: list[tuple[Content, Vector]] = field(default_factory=list)  # a stored vector fits
    fresh: list[Content] = field(default_factory=list)  # needs the model


class ChangeDetector:
    def __init__(self, store: VectorStore, cache: DedupeCache, io: Io) -> None:
        self.store = store
        self.cache = cache
        self.io = io

    def unchanged_sources(self, cache_keys: Sequence[str], digests: dict[str, str]) -> set[str]:
        """Ids whose source digest matches the one recorded with the stored row in every
        collection (``digests``: asset id -> source digest): they need not even be read."""
        candidates = dict(digests)
        for cache_key in cache_keys:
            if not candidates:
                break
            known = self.cache.sources(cache_key, list(candidates))
            candidates = {k: v for k, v in candidates.items() if known.get(k) == v}
        return set(candidates)

    async def classify(
        self, collection: str, cache_key: str, contents: Sequence[Content]
    ) -> Changes:
        changes = Changes()
        known = self.cache.get(cache_key, [c.asset.id for c in contents])
        unknown: list[Content] = []
        for content in contents:
            if known.get(content.asset.id) == content.digest:
                changes.current.append(content)
            else:
                unknown.append(content)
        if not unknown:
            return changes
        ids = [c.asset.id for c in unknown]
        stored: dict[str, StoredRow] = await self.io(
            "dedupe lookup", lambda: self.store.read_rows(collection, ids)
        )
        holders: dict[str, str] = {}  # asset id -> the id of a stored row with its content
        new_content: list[Content] = []
        for content in unknown:
            row = stored.get(content.asset.id)
            if row is not None and row.content_hash == content.content_hash:
                if row_digest(row.content_hash, row.uri, row.metadata) == content.digest:
                    changes.current.append(content)
                else:
                    holders[content.asset.id] = content.asset.id
            else:
                new_content.append(content)
        # content already stored under another id (known to Redis only: a miss costs a model
        # call, never correctness)
        seen = self.cache.holders(cache_key, [c.content_hash for c in new_content])
        for content in new_content:
            if content.content_hash in seen:
                holders[content.asset.id] = seen[content.content_hash]
            else:
                changes.fresh.append(content)
        if holders:
            wanted = list(dict.fromkeys(holders.values()))
            rows = await self.io(
                "vector lookup",
                lambda: self.store.read_rows(collection, wanted, with_vectors=True),
            )
            for content in unknown:
                if content.asset.id not in holders:
                    continue
                row = rows.get(holders[content.asset.id])
                if (
                    row is not None
                    and row.vector is not None
                    and (row.content_hash == content.content_hash)
                ):
                    changes.reuse.append((content, row.vector))
                else:
                    changes.fresh.append(content)  # the holder was deleted or changed
        return changes
