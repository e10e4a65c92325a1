"""Local runs: a topology on files, folders, URIs or texts, in one process, with no server.

Prototype, then deploy. ``streamer run`` and :func:`run` bind the same plans and call
the same runner as a worker, so the vectors are those the worker would store. Each input is
fetched, hashed and run through the rest of its topology in micro-batches; a bad input is a
row with its error and stage, never a crash. With a :class:`LocalIndex` (a milvus-lite file)
the vectors are stored as a worker stores them and can be searched: the nearest neighbours of
a folder, before anything is deployed.
"""

from __future__ import annotations

import asyncio
import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from streamer.config.settings import Settings, load_settings
from streamer.core.digests import asset_id_for, content_hash, text_id
from streamer.core.errors import ConfigError, InvalidMessage, StageError
from streamer.core.messages import IMAGE_SUFFIXES, TEXT_SUFFIXES, VIDEO_SUFFIXES, infer_media_type
from streamer.runner.context import Context
from streamer.runner.operator import Part, Source, Vector
from streamer.runner.plan import Plan
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology

__all__ = ["LocalItem", "LocalRun", "expand_inputs", "run", "run_local", "with_local_roots"]

#: items fetched and decoded per step: bounds memory on a large folder
STEP_ITEMS = 256


@dataclass(frozen=True, slots=True)
class LocalItem:
    """One input and what became of it: a vector, or the error of the stage it failed in."""

    id: str
    source: Source
    topology: str | None
    vector: Vector | None = None
    error: StageError | None = None
    content_hash: str = ""
    parts: tuple[Part, ...] = ()  # a video's segments, when its topology makes them

    @property
    def ok(self) -> bool:
        return self.vector is not None

    def row(self, *, with_vector: bool = False) -> dict[str, Any]:
        """The item as one JSON-able row."""
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source.describe(),
            "topology": self.topology,
        }
        if self.vector is not None:
            out |= {
                "dim": int(self.vector.shape[0]),
                "norm": round(float(np.linalg.norm(self.vector)), 6),
            }
            if with_vector:
                out["vector"] = [round(float(v), 7) for v in self.vector]
            if self.parts:
                out["parts"] = [{"key": p.key, **p.metadata} for p in self.parts]
        elif self.error is not None:
            out |= {"stage": self.error.stage, "error": self.error.cause}
        return out


@dataclass
class LocalRun:
    """The items of a local run, in input order, and the plans that made them."""

    items: list[LocalItem]
    plans: dict[str, Plan] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> list[LocalItem]:
        return [i for i in self.items if i.ok]

    @property
    def errors(self) -> list[LocalItem]:
        return [i for i in self.items if not i.ok]

    def vectors(self) -> np.ndarray:
        """The vectors of the items that succeeded, one row each (one topology only)."""
        if len(self.plans) > 1:
            raise ConfigError("this run used several topologies: take each item's vector")
        rows = [i.vector for i in self.ok if i.vector is not None]
        dim = next(iter(self.plans.values())).dim if self.plans else 0
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def summary(self) -> dict[str, Any]:
        dims = {name: plan.dim for name, plan in self.plans.items()}
        return {
            "items": len(self.items),
            "ok": len(self.ok),
            "errors": len(self.errors),
            "dim": next(iter(dims.values())) if len(dims) == 1 else None,
            "dims": dims,
            "versions": {name: plan.version for name, plan in self.plans.items()},
            "seconds": round(self.seconds, 3),
        }


def _source_id(source: Source) -> str:
    return asset_id_for(source.uri) if source.uri is not None else text_id(source.text or "")


#: the files a folder expands to when no topology is named
MEDIA_SUFFIXES = IMAGE_SUFFIXES | TEXT_SUFFIXES | VIDEO_SUFFIXES


def files_under(folder: Path, suffixes: frozenset[str] | None) -> list[Path]:
    """Regular files under ``folder`` (recursively), with one of ``suffixes`` when given."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (suffixes is None or p.suffix.lower() in suffixes)
    )


def _suffixes(media_type: str) -> frozenset[str] | None:
    """The file suffixes of a media type (``None``: any file, for a medium of the user's)."""
    return {"image": IMAGE_SUFFIXES, "text": TEXT_SUFFIXES, "video": VIDEO_SUFFIXES}.get(media_type)


def expand_inputs(
    inputs: Sequence[str | Path | Source],
    *,
    suffixes: frozenset[str] | None = MEDIA_SUFFIXES,
) -> list[Source]:
    """Sources for files, folders (their files with one of ``suffixes``; ``None``: every
    file), globs, URIs and :class:`Source` items, in a stable order without repeats."""
    wanted = suffixes
    sources: list[Source] = []
    for given in inputs:
        if isinstance(given, Source):
            sources.append(given)
            continue
        text = str(given)
        if "://" in text:
            sources.append(Source(uri=text))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            sources += [Source(uri=p.absolute().as_uri()) for p in files_under(path, wanted)]
        elif path.exists():
            sources.append(Source(uri=path.absolute().as_uri()))
        else:
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            files = [m for m in matches if m.is_file()]
            if not files:
                raise ConfigError(f"no file, folder or glob match for {text!r}")
            sources += [Source(uri=m.absolute().as_uri()) for m in files]
    return list(dict.fromkeys(sources))


def local_roots(inputs: Sequence[str | Path | Source]) -> tuple[Path, ...]:
    """The folders of the local files a user named (paths, globs, ``file://`` URIs): a local
    run may read them, whatever the media roots say."""
    roots: list[Path] = []
    for given in inputs:
        uri = given.uri if isinstance(given, Source) else str(given)
        if uri is None:
            continue
        if uri.startswith("file://"):
            path = Path(unquote(urlsplit(uri).path))
        elif "://" in uri:
            continue
        else:
            path = Path(uri).expanduser()
        if path.is_dir():
            roots.append(path.resolve())
        elif path.exists():
            roots.append(path.resolve().parent)
        else:  # a glob: the folder before its first wildcard
            fixed: list[str] = []
            for part in path.parts:
                if glob.has_magic(part):
                    break
                fixed.append(part)
            roots.append(Path(*fixed).resolve() if fixed else Path.cwd())
    return tuple(dict.fromkeys(roots))


def with_local_roots(settings: Settings, inputs: Sequence[str | Path | Source]) -> Settings:
    """``settings`` whose media roots also hold the local files named in ``inputs``."""
    roots = tuple(dict.fromkeys([*settings.fetch.media_roots, *local_roots(inputs)]))
    fetch = settings.fetch.model_copy(update={"media_roots": roots})
    return settings.model_copy(update={"fetch": fetch})


def route(
    sources: Sequence[Source], topologies: Sequence[Topology], topology: str | None
) -> list[Topology | InvalidMessage]:
    """Each source's topology: the one named, else the first that takes its media type."""
    served = {t.name: t for t in topologies}
    if topology is not None:
        if topology not in served:
            raise ConfigError(f"unknown topology {topology!r}; known: {sorted(served)}")
        return [served[topology]] * len(sources)
    by_media: dict[str, Topology] = {}
    for t in topologies:
        by_media.setdefault(t.media_type, t)
    routed: list[Topology | InvalidMessage] = []
    for source in sources:
        kind = infer_media_type(source.uri, source.text)
        if kind is None or kind not in by_media:
            routed.append(
                InvalidMessage(
                    f"no topology takes {source.describe()} (media type "
                    f"{kind or 'unknown'}); name one with --topology"
                )
            )
        else:
            routed.append(by_media[kind])
    return routed


async def run_sources(
    runner: Runner,
    plan: Plan,
    sources: Sequence[Source],
    ids: Sequence[str],
) -> list[LocalItem]:
    """Fetch and hash, then the rest of the plan, as a worker does; one item per source."""
    fetched = await runner.run(plan, sources, ids=ids, last=1)
    hashes = ["" if isinstance(d, StageError) else content_hash(d) for d in fetched]
    live = [i for i, d in enumerate(fetched) if not isinstance(d, StageError)]
    results: list[Any] = list(fetched)
    parts: dict[int, tuple[Part, ...]] = {}
    outs = await runner.run(
        plan, [fetched[i] for i in live], ids=[ids[i] for i in live], first=1, parts=parts
    )
    own: dict[int, tuple[Part, ...]] = {}
    for n, (i, out) in enumerate(zip(live, outs, strict=True)):
        results[i] = out
        own[i] = parts.get(n, ())
    name = plan.topology.name
    return [
        LocalItem(ids[i], sources[i], name, error=r)
        if isinstance(r, StageError)
        else LocalItem(
            ids[i], sources[i], name, vector=r, content_hash=hashes[i], parts=own.get(i, ())
        )
        for i, r in enumerate(results)
    ]


def run_local(
    topologies: Sequence[Topology],
    inputs: Sequence[str | Path | Source],
    *,
    texts: Sequence[str] = (),
    topology: str | None = None,
    version: str | None = None,
    settings: Settings | None = None,
    plans: Plans | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LocalRun:
    """Run ``inputs`` (and inline ``texts``) through their topologies in this process.

    ``topology`` names the one to use (else each input goes to the first topology of its
    media type); the local paths named may be read whatever ``STREAMER_FETCH_MEDIA_ROOTS`` says.
    ``plans`` binds them (default: on the settings' device, at the declared batch sizes); plans
    given must have been made with :func:`with_local_roots` settings, to read those paths.
    """
    started = time.perf_counter()
    settings = with_local_roots(settings or load_settings(use_stack=False), inputs)
    named = [t for t in topologies if t.name == topology]
    suffixes = _suffixes(named[0].media_type) if named else MEDIA_SUFFIXES
    sources = expand_inputs(inputs, suffixes=suffixes) + [Source(text=t) for t in texts]
    routes = route(sources, topologies, topology)
    plans = plans or Plans(
        Context.from_settings(settings), pinned_batch_size=settings.batching.max_batch_size
    )
    from streamer.runner.device import resolve_device

    runner = Runner.with_threads(
        settings.batching.decode_workers,
        settings.runtime.streams_for(resolve_device(settings.runtime.device)),
        name="local",
        batch_size=plans.batch_size,
    )
    items: list[LocalItem | None] = [None] * len(sources)
    used: dict[str, Plan] = {}
    try:
        for i, routed in enumerate(routes):
            if isinstance(routed, StageError):
                items[i] = LocalItem(_source_id(sources[i]), sources[i], None, error=routed)
        groups: dict[str, list[int]] = {}
        for i, routed in enumerate(routes):
            if isinstance(routed, Topology):
                groups.setdefault(routed.name, []).append(i)
        served = {t.name: t for t in topologies}
        done = len(sources) - sum(len(g) for g in groups.values())
        for name, indices in groups.items():
            plan = used.get(name) or plans.get(served[name], version)
            used[name] = plan
            for start in range(0, len(indices), STEP_ITEMS):
                step = indices[start : start + STEP_ITEMS]
                ran = asyncio.run(
                    run_sources(
                        runner,
                        plan,
                        [sources[i] for i in step],
                        [_source_id(sources[i]) for i in step],
                    )
                )
                for i, item in zip(step, ran, strict=True):
                    items[i] = item
                done += len(step)
                if progress is not None:
                    progress(done, len(sources))
    finally:
        runner.close()
    return LocalRun([i for i in items if i is not None], used, time.perf_counter() - started)


def run(
    topology: Topology,
    inputs: Sequence[str | Path | Source],
    *,
    version: str | None = None,
    settings: Settings | None = None,
) -> LocalRun:
    """Run one topology on files, folders, globs, URIs or :class:`Source` items, in this
    process, with no server: the vectors a worker would store (see ``streamer run``)."""
    return run_local([topology], inputs, topology=topology.name, version=version, settings=settings)
