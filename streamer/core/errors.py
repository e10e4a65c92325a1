"""The exception tree of streamer: one root, and every error names what a person needs to act.

StreamerError
├── ConfigError            a setting or a declaration is invalid
├── StackError             the embedded stack cannot start, stop or be found
├── StageError             one asset failed at one pipeline stage (goes to the dead letters)
│   ├── InvalidMessage     stage "validate": malformed JSON, a missing or wrong field
│   ├── FetchError         stage "fetch": unreadable, refused or too large
│   ├── DecodeError        stage "decode": corrupt, unsupported or oversized media
│   ├── EmbedError         stage "embed": the model failed on this item
│   └── SinkError          stage "sink": the vector store rejected the row
├── QueryError             a search request that cannot be answered (sent back as its error)
├── NoAnswer               a search client waited in vain (is a worker running?)
├── BatchContractError     an operator returned a different number of results than inputs
├── DeliveryError          the broker refused a produced message for good (streamer.kafka)
└── TransientError         a dependency is down (broker, Redis, Milvus): retry, never drop
"""

from __future__ import annotations

from typing import ClassVar, Literal

Stage = Literal["validate", "fetch", "decode", "embed", "sink"]

__all__ = [
    "BatchContractError",
    "ConfigError",
    "DecodeError",
    "EmbedError",
    "FetchError",
    "InvalidMessage",
    "NoAnswer",
    "QueryError",
    "SinkError",
    "StackError",
    "Stage",
    "StageError",
    "StreamerError",
    "TransientError",
]


class StreamerError(Exception):
    """Root of every error streamer raises on purpose."""


class ConfigError(StreamerError):
    """A setting or a topology declaration is invalid."""


class StackError(StreamerError):
    """The embedded stack could not be started, found or stopped."""


class StageError(StreamerError):
    """One asset failed at one stage; the message names the stage, the asset and the cause."""

    stage: ClassVar[Stage]

    def __init__(self, cause: str, *, asset_id: str | None = None) -> None:
        self.cause = cause
        self.asset_id = asset_id
        where = f"asset {asset_id!r}" if asset_id else "unidentified asset"
        super().__init__(f"[{self.stage}] {where}: {cause}")

    def for_asset(self, asset_id: str) -> StageError:
        """The same error, naming the asset (stages deep inside may not know the id)."""
        if self.asset_id == asset_id:
            return self
        return type(self)(self.cause, asset_id=asset_id)


class InvalidMessage(StageError):
    stage = "validate"


class FetchError(StageError):
    stage = "fetch"


class DecodeError(StageError):
    stage = "decode"


class EmbedError(StageError):
    stage = "embed"


class SinkError(StageError):
    stage = "sink"


class QueryError(StreamerError):
    """A search request that cannot be answered; the message goes back in the result."""


class NoAnswer(StreamerError):
    """No answer came back in time for a search request."""


class BatchContractError(StreamerError):
    """A batch operator broke the N-in, N-out, in-order contract."""

    def __init__(self, operator: str, expected: int, got: int) -> None:
        self.operator = operator
        super().__init__(f"operator {operator!r} returned {got} results for {expected} inputs")


class TransientError(StreamerError):
    """A dependency is unavailable; the work must be retried, never dropped or committed past."""

    def __init__(self, dependency: str, cause: str, *, retry_after_s: float = 0.0) -> None:
        """``retry_after_s``: when the dependency says it will be back (0: it does not say)."""
        self.dependency = dependency
        self.retry_after_s = retry_after_s
        advice = f" (retry after {retry_after_s:.1f}s)" if retry_after_s > 0 else ""
        super().__init__(f"{dependency} unavailable: {cause}{advice}")
