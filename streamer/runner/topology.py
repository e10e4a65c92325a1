"""A topology: a declared chain of operators, from a media reference to a vector.

It reads top to bottom as the data moves::

    IMAGE = Topology(
        name="image",
        media_type="image",
        stages=(
            Fetch(),
            DecodeImage(min_side=EFFNET),
            TimmPreprocess(EFFNET),
            TimmEmbed(EFFNET, batch=BatchPolicy(16, 50)),
            Normalize(),
        ),
        model_version="effnet-lite0@1",
        alternatives=(
            ModelVersion("effnet-lite0-b5@2", {"embed": TimmEmbed(EFFNET, layer="blocks.5")}),
        ),
    )

Everything is checked when it is declared, so a bad pipeline fails at import, not at 3 a.m.:
the first stage takes a :class:`~streamer.runner.operator.Source` and gives the content's
bytes (what dedupe hashes); each stage takes what the one before gives; the chain ends in a
vector-producing tail (once a stage gives vectors, every later one takes and gives vectors);
stage names are distinct; model versions are distinct, and a version replaces stages by name
(never the first: every version stores the same content) and still fits.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamer.core.errors import ConfigError, StageError
from streamer.runner.operator import VECTOR, BatchPolicy, ModelOperator, Operator, Source

__all__ = ["ModelVersion", "Topology", "check_chain"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MEDIA = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")

Stages = tuple[Operator[Any, Any], ...]


@dataclass(frozen=True, eq=False)
class ModelVersion:
    """Another version a topology can be rolled out to: the same chain with some stages
    replaced, by name (e.g. ``{"embed": Embed(EFFNET, layer="blocks.5")}``). ``space``: see
    :attr:`Topology.space`."""

    version: str
    replace: Mapping[str, Operator[Any, Any]]
    space: str | None = None


def _type_name(kind: type) -> str:
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def check_chain(where: str, stages: Sequence[Operator[Any, Any]]) -> None:
    """Raise :class:`ConfigError` unless ``stages`` form a valid chain (see the module doc)."""
    if not stages:
        raise ConfigError(f"{where}: a topology needs at least one stage")
    for stage in stages:
        if not isinstance(stage, Operator):
            raise ConfigError(f"{where}: {stage!r} is not an Operator")
        declared = (
            isinstance(getattr(stage, "name", None), str)
            and isinstance(getattr(stage, "takes", None), type)
            and isinstance(getattr(stage, "gives", None), type)
            and isinstance(getattr(stage, "error", None), type)
            and issubclass(stage.error, StageError)
        )
        if not declared:
            raise ConfigError(
                f"{where}: operator {type(stage).__name__} must declare name (str), takes and "
                "gives (types) and error (a StageError class)"
            )
    names = [s.name for s in stages]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: stage names repeat: {repeated} (each stage needs its own)")
    first = stages[0]
    if not issubclass(Source, first.takes) or not issubclass(first.gives, bytes):
        raise ConfigError(
            f"{where}: the first stage must take a Source and give bytes (the content that "
            f"dedupe hashes); {first.name!r} takes {_type_name(first.takes)} and gives "
            f"{_type_name(first.gives)}"
        )
    for before, after in itertools.pairwise(stages):
        if not issubclass(before.gives, after.takes):
            raise ConfigError(
                f"{where}: stage {before.name!r} gives {_type_name(before.gives)} but the next "
                f"stage {after.name!r} takes {_type_name(after.takes)}"
            )
    if not issubclass(stages[-1].gives, VECTOR):
        raise ConfigError(
            f"{where}: the last stage {stages[-1].name!r} must give a vector, not "
            f"{_type_name(stages[-1].gives)}"
        )
    in_tail = False
    for stage in stages:
        if in_tail and not (issubclass(stage.takes, VECTOR) and issubclass(stage.gives, VECTOR)):
            raise ConfigError(
                f"{where}: stage {stage.name!r} follows a vector-producing stage, so it must "
                "take and give vectors (one vector-producing tail)"
            )
        in_tail = in_tail or issubclass(stage.gives, VECTOR)


@dataclass(frozen=True, eq=False)
class Topology:
    """One declared pipeline for one media type: its stages, model versions and metadata."""

    name: str
    media_type: str
    stages: Stages
    model_version: str
    alternatives: tuple[ModelVersion, ...] = ()
    metadata_fields: tuple[str, ...] = ("tenant", "source", "category")
    #: the embedding space of ``model_version``'s vectors, when other topologies share it (the
    #: ``image`` and ``video`` topologies embed photos and frames with one model): a query of
    #: one medium may then search another's collection, embedded by its own topology
    space: str | None = None
    _by_version: dict[str, Stages] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"topology name {self.name!r} must match {_NAME.pattern}")
        where = f"topology {self.name!r}"
        if not _MEDIA.match(self.media_type):
            raise ConfigError(
                f"{where}: media_type {self.media_type!r} must match {_MEDIA.pattern}"
            )
        for name in self.metadata_fields:
            if not _FIELD.match(name):
                raise ConfigError(f"{where}: metadata field {name!r} must match {_FIELD.pattern}")
        object.__setattr__(self, "stages", tuple(self.stages))
        versions = [self.model_version, *(a.version for a in self.alternatives)]
        if len(set(versions)) != len(versions):
            raise ConfigError(f"{where}: model versions repeat: {versions}")
        for version in versions:
            if not _VERSION.match(version):
                raise ConfigError(
                    f"{where}: model version {version!r} must match {_VERSION.pattern}"
                )
        check_chain(where, self.stages)
        by_version = {self.model_version: self.stages}
        names = [s.name for s in self.stages]
        for alternative in self.alternatives:
            unknown = sorted(set(alternative.replace) - set(names))
            if unknown:
                raise ConfigError(
                    f"{where}: version {alternative.version!r} replaces unknown stages "
                    f"{unknown}; the stages are {names}"
                )
            if names[0] in alternative.replace:
                raise ConfigError(
                    f"{where}: version {alternative.version!r} may not replace the first "
                    f"stage {names[0]!r}: every version stores the same content"
                )
            stages = tuple(alternative.replace.get(s.name, s) for s in self.stages)
            check_chain(f"{where} version {alternative.version!r}", stages)
            by_version[alternative.version] = stages
        object.__setattr__(self, "_by_version", by_version)

    def versions(self) -> list[str]:
        """Every declared model version, the default first."""
        return list(self._by_version)

    def space_of(self, version: str | None = None) -> str | None:
        """The embedding space of a model version's vectors (``None``: its own alone)."""
        version = version or self.model_version
        if version == self.model_version:
            return self.space
        return next((a.space for a in self.alternatives if a.version == version), None)

    def gives_parts(self) -> bool:
        """Whether an asset may have parts in any version (their rows go with the asset's)."""
        return any(op.gives_parts for v in self.versions() for op in self.stages_for(v))

    def stages_for(self, version: str | None = None) -> Stages:
        """The chain of one model version (default: the topology's own)."""
        try:
            return self._by_version[version or self.model_version]
        except KeyError:
            raise ConfigError(
                f"topology {self.name!r} declares no model version {version!r}; "
                f"declared: {self.versions()}"
            ) from None

    def batch_policy(self, version: str | None = None) -> BatchPolicy:
        """The policy of the first model stage (the stream's micro-batches follow it)."""
        for stage in self.stages_for(version):
            if isinstance(stage, ModelOperator):
                return stage.batch
        return BatchPolicy()

    def replacing(self, **stages: Operator[Any, Any]) -> Topology:
        """The same topology with some stages replaced by name (checked like a declaration)."""
        unknown = sorted(set(stages) - {s.name for s in self.stages})
        if unknown:
            raise ConfigError(f"topology {self.name!r} has no stages {unknown}")
        return replace(self, stages=tuple(stages.get(s.name, s) for s in self.stages))

    def baseline(self) -> Topology:
        """The same chain, each stage as a per-item runtime would run it (the benchmark's
        naive baseline: full-size decode, the model's transform as it comes)."""
        return replace(self, stages=tuple(s.baseline() for s in self.stages), alternatives=())

    def collection_name(self, version: str | None = None, *, prefix: str = "") -> str:
        """The Milvus collection of one model version, e.g. ``image__effnet_lite0_1``."""
        slug = re.sub(r"[^A-Za-z0-9]+", "_", version or self.model_version).strip("_").lower()
        return f"{prefix}{self.name}__{slug}"

    def alias(self, *, prefix: str = "") -> str:
        """The Milvus alias that serves searches for this topology."""
        return f"{prefix}{self.name}"
