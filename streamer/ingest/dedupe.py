"""Redis memory of what each collection already holds, so re-deliveries cost no model work.

Redis only saves work: every answer it gives is one the vector store could give too, so when
Redis is flushed or down the pipeline asks Milvus instead and ends in the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import redis

__all__ = ["DedupeCache"]

log = logging.getLogger(__name__)


class DedupeCache:
    """Per collection, three Redis hashes: asset id -> row digest (is the stored row current?),
    content hash -> an asset id holding that content (can its vector be reused?), and asset
    id -> source digest (is the source unchanged since the row was stored, so it need not even
    be read?). Failures degrade to misses."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, collection: str) -> str:
        return f"{self.prefix}:seen:{collection}"

    def _source_key(self, collection: str) -> str:
        return f"{self.prefix}:source:{collection}"

    def sources(self, collection: str, ids: Sequence[str]) -> dict[str, str]:
        """The source digest recorded for each known asset id."""
        return self._hmget(self._source_key(collection), ids)

    def remember_sources(self, collection: str, digests: Mapping[str, str]) -> None:
        self._hset(self._source_key(collection), digests)

    def _content_key(self, collection: str) -> str:
        return f"{self.prefix}:content:{collection}"

    def _hmget(self, key: str, fields: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(fields))
        if not unique:
            return {}
        try:
            values = self.client.hmget(key, unique)
        except redis.RedisError as exc:
            log.warning("dedupe cache unavailable, doing the work instead: %s", exc)
            return {}
        return {f: v.decode() for f, v in zip(unique, values, strict=True) if v is not None}

    def _hset(self, key: str, values: Mapping[str, str]) -> None:
        if not values:
            return
        try:
            mapping: dict[str | bytes, str] = {k: v for k, v in values.items()}
            self.client.hset(key, mapping=mapping)
        except redis.RedisError as exc:
            log.warning("dedupe cache write skipped: %s", exc)

    def holders(self, collection: str, hashes: Sequence[str]) -> dict[str, str]:
        """For each known content hash, an asset id whose row was stored with that content."""
        return self._hmget(self._content_key(collection), hashes)

    def remember_content(self, collection: str, holders: Mapping[str, str]) -> None:
        self._hset(self._content_key(collection), holders)

    def get(self, collection: str, ids: Sequence[str]) -> dict[str, str]:
        """The row digest stored for each known asset id."""
        return self._hmget(self._key(collection), ids)

    def put(self, collection: str, digests: Mapping[str, str]) -> None:
        self._hset(self._key(collection), digests)

    def forget(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            self.client.hdel(self._key(collection), *ids)
            self.client.hdel(self._source_key(collection), *ids)
        except redis.RedisError as exc:
            log.warning("dedupe cache delete skipped: %s", exc)
