"""Digests: whether stored work is still current (of content, of a row, of a source), and
the stable ids of assets published without one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from streamer.core.messages import LABELS_KEY

__all__ = ["asset_id_for", "content_hash", "row_digest", "source_digest", "text_id"]


def content_hash(data: bytes) -> str:
    """SHA-256 of the fetched bytes (or the UTF-8 text)."""
    return hashlib.sha256(data).hexdigest()


def row_digest(content: str, uri: str, metadata: Mapping[str, Any]) -> str:
    """What makes a stored row current: its content, its uri and its metadata (the labels that
    attached classifiers wrote beside it left out: what the upload said)."""
    if LABELS_KEY in metadata:
        metadata = {k: v for k, v in metadata.items() if k != LABELS_KEY}
    canonical = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{content}\0{uri}\0{canonical}".encode()).hexdigest()


def source_digest(validator: str, uri: str, metadata: Mapping[str, Any]) -> str:
    """What a stored row was made from, as far as the source's validator tells (no read)."""
    return row_digest(f"validator:{validator}", uri, metadata)


def asset_id_for(uri: str) -> str:
    """A stable, readable id: the file name and a short hash of the full URI."""
    name = uri.rstrip("/").rsplit("/", 1)[-1][:64] or "asset"
    return f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:10]}"


def text_id(text: str) -> str:
    """A stable id for inline text: a short hash of it."""
    return f"text-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
