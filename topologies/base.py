"""What a topology declares: the media it takes, its model and version, its batching policy.

Declarations are validated when they are made, so a bad policy fails at import, not at 3 a.m.
Models are described by specs and loaded once per process, on the device chosen at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamer.core.errors import ConfigError
from streamer.core.messages import MediaType

__all__ = ["BatchPolicy", "ModelSpec", "ModelVersion", "TextModelSpec", "TimmModelSpec", "Topology"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")

WeightsSource = Path | Callable[[], Path]


def _weights_path(source: WeightsSource) -> Path:
    return source() if callable(source) else source


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Micro-batching: flush at ``max_batch_size`` items or ``max_wait_ms`` after the first."""

    max_batch_size: int = 32
    max_wait_ms: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 4096:
            raise ConfigError(f"max_batch_size must be in 1..4096, got {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise ConfigError(f"max_wait_ms must be in 0..60000, got {self.max_wait_ms}")

    def overridden(self, max_batch_size: int | None, max_wait_ms: int | None) -> BatchPolicy:
        return BatchPolicy(
            max_batch_size=max_batch_size or self.max_batch_size,
            max_wait_ms=self.max_wait_ms if max_wait_ms is None else max_wait_ms,
        )


@dataclass(frozen=True, slots=True)
class TimmModelSpec:
    """A timm architecture with local weights; ``layer`` picks an earlier embedding layer."""

    arch: str
    weights: WeightsSource
    map_keys_by_order: bool = False
    layer: str | None = None

    def weights_path(self) -> Path:
        return _weights_path(self.weights)


@dataclass(frozen=True, slots=True)
class TextModelSpec:
    """A local transformers encoder, pooled over tokens (``mean``) or its first token (``cls``)."""

    model_dir: WeightsSource
    max_length: int = 256
    pooling: Literal["mean", "cls"] = "mean"

    def model_path(self) -> Path:
        return _weights_path(self.model_dir)


ModelSpec = TimmModelSpec | TextModelSpec


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """Another model a topology can be rolled out to, under its own version string."""

    version: str
    model: ModelSpec


@dataclass(frozen=True, slots=True)
class Topology:
    """One declared pipeline: media type, model, version, batching and device."""

    name: str
    media_type: MediaType
    model: TimmModelSpec | TextModelSpec
    model_version: str
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    metadata_fields: tuple[str, ...] = ("tenant", "source", "category")
    alternatives: tuple[ModelVersion, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"topology name {self.name!r} must match {_NAME.pattern}")
        for name in self.metadata_fields:
            if not _FIELD.match(name):
                raise ConfigError(
                    f"topology {self.name!r}: metadata field {name!r} must match {_FIELD.pattern}"
                )
        expects = TimmModelSpec if self.media_type == "image" else TextModelSpec
        versions = [self.model_version, *(a.version for a in self.alternatives)]
        if len(set(versions)) != len(versions):
            raise ConfigError(f"topology {self.name!r}: model versions repeat: {versions}")
        for version, spec in [(self.model_version, self.model),
                              *((a.version, a.model) for a in self.alternatives)]:  # fmt: skip
            if not _VERSION.match(version):
                raise ConfigError(
                    f"topology {self.name!r}: model_version {version!r} must match "
                    f"{_VERSION.pattern}"
                )
            if not isinstance(spec, expects):
                raise ConfigError(
                    f"topology {self.name!r}: {self.media_type} media needs a {expects.__name__}"
                )

    def versions(self) -> dict[str, ModelSpec]:
        """Every declared model version, the default first."""
        return {self.model_version: self.model, **{a.version: a.model for a in self.alternatives}}

    def spec(self, version: str) -> ModelSpec:
        try:
            return self.versions()[version]
        except KeyError:
            raise ConfigError(
                f"topology {self.name!r} declares no model version {version!r}; "
                f"declared: {list(self.versions())}"
            ) from None

    def collection_name(self, version: str | None = None, *, prefix: str = "") -> str:
        """The Milvus collection of one model version, e.g. ``image__effnet_lite0_1``."""
        slug = re.sub(r"[^A-Za-z0-9]+", "_", version or self.model_version).strip("_").lower()
        return f"{prefix}{self.name}__{slug}"

    def alias(self, *, prefix: str = "") -> str:
        """The Milvus alias that serves searches for this topology."""
        return f"{prefix}{self.name}"
