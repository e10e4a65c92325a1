"""Redis memory of what each collection already holds, so re-deliveries cost no model work.

Redis only saves work: every answer it gives is one the vector store could give too, so when
Redis is flushed or down the pipeline asks Milvus instead and ends in the same state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis

__all__ = ["DedupeCache", "content_hash", "row_digest"]

log = logging.getLogger(__name__)


def content_hash(data: bytes) -> str:
    """SHA-256 of the fetched bytes (or the UTF-8 text)."""
    return hashlib.sha256(data).hexdigest()


def row_digest(content: str, uri: str, metadata: Mapping[str, Any]) -> str:
    """What makes a stored row current: its content, its uri and its metadata."""
    canonical = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{content}\0{uri}\0{canonical}".encode()).hexdigest()


class DedupeCache:
    """``collection -> {asset id: row digest}`` in Redis hashes; failures degrade to misses."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, collection: str) -> str:
        return f"{self.prefix}:seen:{collection}"

    def get(self, collection: str, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        try:
            values = self.client.hmget(self._key(collection), list(ids))
        except redis.RedisError as exc:
            log.warning("dedupe cache unavailable, asking the vector store: %s", exc)
            return {}
        return {i: v.decode() for i, v in zip(ids, values, strict=True) if v is not None}

    def put(self, collection: str, digests: Mapping[str, str]) -> None:
        if not digests:
            return
        try:
            mapping: dict[str | bytes, str] = {k: v for k, v in digests.items()}
            self.client.hset(self._key(collection), mapping=mapping)
        except redis.RedisError as exc:
            log.warning("dedupe cache write skipped: %s", exc)

    def forget(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            self.client.hdel(self._key(collection), *ids)
        except redis.RedisError as exc:
            log.warning("dedupe cache delete skipped: %s", exc)
