"""Wire messages of the public contract (JSON values, UTF-8), validated field by field.

``media.uploads`` carries :class:`UploadMessage`; ``media.deadletter`` carries the original bytes
with the headers of :class:`DeadLetter`; ``media.labels`` carries :class:`LabelEvent` (the
verdicts of the classifiers attached to a topology); ``search.requests`` / ``search.results`` carry
:class:`SearchRequest` / :class:`SearchResult`, the latter with the :class:`SearchHops` of its
round trip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamer.core.errors import InvalidMessage, Stage, StageError

__all__ = [
    "HOPS",
    "LABELS_KEY",
    "DeadLetter",
    "Hit",
    "LabelEvent",
    "MediaType",
    "SearchHops",
    "SearchRequest",
    "SearchResult",
    "UploadMessage",
    "Verdict",
    "infer_media_type",
    "parse_upload",
]

#: a medium, e.g. ``image`` or ``text``; a topology of the user's may add its own
MediaType = str
MEDIA_TYPE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_ID_CHARS = 512
MAX_URI_CHARS = 4096

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".md", ".text"})
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".ogv"}
)
URI_SCHEMES = frozenset({"file", "http", "https", "s3"})
#: the metadata key under which a stored row holds the verdicts of the classifiers attached to
#: its topology (``{"cats": {"score": 0.93, "label": true}}``): written by streamer, refused in
#: an upload's metadata, left out of the row digest
LABELS_KEY = "classifiers"


def infer_media_type(uri: str | None, text: str | None) -> MediaType | None:
    """Text when inline text is given, else by the URI's file suffix; None when unknown."""
    if text is not None:
        return "text"
    if uri is None:
        return None
    suffix = PurePosixPath(urlsplit(uri).path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


class UploadMessage(BaseModel):
    """A reference to one uploaded asset, or a request to delete one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    uri: str | None = Field(None, max_length=MAX_URI_CHARS)
    media_type: MediaType | None = Field(None, pattern=MEDIA_TYPE_PATTERN)
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    op: Literal["upsert", "delete"] = "upsert"

    @model_validator(mode="after")
    def _check(self) -> UploadMessage:
        if self.id != self.id.strip() or any(ord(c) < 32 for c in self.id):
            raise ValueError("id: must not have surrounding spaces or control characters")
        if self.op == "delete":
            return self
        if LABELS_KEY in self.metadata:
            raise ValueError(
                f"metadata: {LABELS_KEY!r} is reserved for the labels of attached classifiers"
            )
        if self.uri is None and self.text is None:
            raise ValueError("uri or text: an upsert needs a uri or inline text")
        if self.uri is not None:
            scheme = urlsplit(self.uri).scheme.lower()
            if scheme not in URI_SCHEMES:
                raise ValueError(
                    f"uri: scheme {scheme or '(none)'!r} is not one of {sorted(URI_SCHEMES)}"
                )
        if self.media_type is None:
            inferred = infer_media_type(self.uri, self.text)
            if inferred is None:
                raise ValueError("media_type: absent and cannot be inferred from the uri")
            object.__setattr__(self, "media_type", inferred)
        return self

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_upload(value: bytes | None) -> UploadMessage:
    """Parse a ``media.uploads`` value; :class:`InvalidMessage` names the field and problem."""
    if not value:
        raise InvalidMessage("empty message value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidMessage(f"value is not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidMessage(f"value must be a JSON object, got {type(data).__name__}")
    asset_id = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        return UploadMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(_describe(exc), asset_id=asset_id) from exc


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be processed, with where it came from and why."""

    value: bytes
    key: bytes | None
    stage: Stage
    error_class: str
    error_message: str
    source_topic: str
    source_partition: int
    source_offset: int
    attempts: int = 1

    @classmethod
    def from_error(
        cls,
        error: StageError,
        *,
        value: bytes,
        key: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        attempts: int = 1,
    ) -> DeadLetter:
        return cls(
            value=value,
            key=key,
            stage=error.stage,
            error_class=type(error).__name__,
            error_message=str(error),
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            attempts=attempts,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("x-error-stage", self.stage.encode()),
            ("x-error-class", self.error_class.encode()),
            ("x-error-message", self.error_message.encode()[:4096]),
            ("x-source-topic", self.source_topic.encode()),
            ("x-source-partition", str(self.source_partition).encode()),
            ("x-source-offset", str(self.source_offset).encode()),
            ("x-attempts", str(self.attempts).encode()),
        ]


class Verdict(BaseModel):
    """One classifier's verdict on one row."""

    model_config = ConfigDict(frozen=True)

    score: float = Field(ge=0, le=1)
    label: bool


class LabelEvent(BaseModel):
    """What the classifiers attached to a topology said of one stored row (``media.labels``,
    keyed by the row's id): a score (the probability, 0 to 1) and a label (score ≥ 0.5) per
    classifier. A video segment's row names its video in ``part_of``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    topology: str
    model_version: str
    media_type: str
    uri: str | None = None
    part_of: str | None = None
    labels: dict[str, Verdict]
    labelled_ms: float

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class SearchRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str | None = None
    uri: str | None = Field(None, max_length=MAX_URI_CHARS)
    vector: list[float] | None = None
    topology: str | None = None
    top_k: int = Field(10, ge=1)
    filter: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None
    reply_to: str = "search.results"
    #: the client's wall clock (ms since the epoch) when it sent the request; optional, and
    #: copied into the answer's :class:`SearchHops` so one round trip can be split into hops
    sent_ms: float | None = None


class Hit(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    score: float
    uri: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


#: the hops of a search round trip, in order (see :class:`SearchHops`)
HOPS = ("request", "queue", "prepare", "search", "finish", "reply")


class SearchHops(BaseModel):
    """When one request passed each point of the query path, in ms since the epoch.

    The stamps come from two processes' wall clocks (the client's ``sent_ms``, the worker's
    others), so a hop that crosses processes is only as exact as the clocks agree: on one
    machine they are the same clock; across machines the request hop and the reply hop are
    off by the clocks' offset in opposite directions, and their sum is still right. Hops that
    stay in the worker (queue, prepare, search, finish) never mix clocks.

    - request: ``sent_ms`` → ``received_ms`` (client produce, broker, worker fetch)
    - queue: ``received_ms`` → ``taken_ms`` (behind the batch in progress, coalescing window)
    - prepare: ``taken_ms`` → ``search_started_ms`` (validation, alias lookup, embedding)
    - search: ``search_started_ms`` → ``search_ended_ms`` (the Milvus call of its group)
    - finish: ``search_ended_ms`` → ``replied_ms`` (results built, earlier answers sent)
    - reply: ``replied_ms`` → the client's receipt (reply produce, broker, client fetch)

    The search stamps are None when the request failed before reaching Milvus.
    """

    model_config = ConfigDict(frozen=True)

    sent_ms: float | None = None
    received_ms: float
    taken_ms: float
    search_started_ms: float | None = None
    search_ended_ms: float | None = None
    replied_ms: float | None = None

    def durations_ms(self, answered_ms: float) -> dict[str, float] | None:
        """Each hop's duration in ms (keys: :data:`HOPS`) for an answer the client got at
        ``answered_ms``; None when a stamp is missing (an older client or worker, a request
        that failed before its search)."""
        stamps = (
            self.sent_ms,
            self.received_ms,
            self.taken_ms,
            self.search_started_ms,
            self.search_ended_ms,
            self.replied_ms,
            answered_ms,
        )
        if any(stamp is None for stamp in stamps):
            return None
        known = [float(stamp) for stamp in stamps if stamp is not None]
        return {
            hop: end - start for hop, start, end in zip(HOPS, known[:-1], known[1:], strict=True)
        }


class SearchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    hits: list[Hit] = Field(default_factory=list)
    topology: str | None = None
    model_version: str | None = None
    took_ms: float = 0.0
    error: str | None = None
    #: optional: answers of older workers have none, and older clients ignore it
    hops: SearchHops | None = None
