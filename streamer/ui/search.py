"""What the search page asks: a text, a photo or a stored asset's id, embedded in this process
(the plans every path binds) and searched in the vector store directly.

A query of another medium than the searched topology's is embedded by a served topology of its
medium in the same space (a photo searching videos). A text searching photos with no text
topology in their space starts from the image model's ImageNet classes that its words match
(:class:`~streamer.trainer.ClassBridge`). Every refusal is a :class:`PageError` whose message
the page shows: an unknown topology or id, a file that is not an image, a filter on an
undeclared field; nothing reaches the page as a trace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streamer.config.cpus import available_cores
from streamer.config.settings import Settings
from streamer.core.errors import QueryError, StageError, StreamerError
from streamer.models.loading import plans_for
from streamer.query.filters import build_filter
from streamer.query.service import embedding_topology
from streamer.runner.operator import Source
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.storage.store import VectorStore
from streamer.trainer import ClassBridge

__all__ = ["PageError", "PageQuery", "PageSearch"]

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]


class PageError(StreamerError):
    """A request of the page that cannot be answered; its message is shown as it is."""


@dataclass
class PageQuery:
    topology: str
    text: str | None = None
    asset_id: str | None = None
    image: bytes | None = None
    top_k: int = 12
    filter: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        given = [v for v in (self.text, self.asset_id, self.image) if v]
        if len(given) != 1:
            raise PageError("search with one of: a text, a photo, or an asset's id")
        if not 1 <= self.top_k <= 100:
            raise PageError("top-k goes from 1 to 100")


class PageSearch:
    def __init__(self, settings: Settings, topologies: Sequence[Topology]) -> None:
        self.settings = settings
        self.topologies = {t.name: t for t in topologies}
        self.plans = plans_for(settings, measure=False)
        self.runner = Runner.with_threads(available_cores(), 1, name="ui")
        self.store = VectorStore(settings.milvus)
        self._bridges: dict[str, ClassBridge] = {}
        self._bridge_lock = threading.Lock()

    def close(self) -> None:
        self.runner.close()
        self.store.close()

    def topology(self, name: str) -> Topology:
        if name not in self.topologies:
            raise PageError(f"no topology {name!r} here (served: {sorted(self.topologies)})")
        return self.topologies[name]

    def collection(self, topology: Topology) -> str:
        """The serving version's collection (what the alias points at)."""
        alias = topology.alias(prefix=self.settings.milvus.collection_prefix)
        target = self.store.alias_target(alias)
        if target is None:
            raise PageError(f"topology {topology.name!r} has nothing indexed yet")
        return target

    def row(self, topology: Topology, asset_id: str) -> Any:
        rows = self.store.read_rows(self.collection(topology), [asset_id], with_vectors=True)
        if asset_id not in rows:
            raise PageError(f"no asset {asset_id!r} in {topology.name!r}")
        return rows[asset_id]

    async def search(self, query: PageQuery) -> dict[str, Any]:
        query.check()
        topology = self.topology(query.topology)
        loop = asyncio.get_running_loop()
        try:
            where = build_filter(query.filter, topology.metadata_fields)
        except QueryError as exc:
            raise PageError(str(exc)) from exc
        collection = await loop.run_in_executor(None, self.collection, topology)
        serving = await loop.run_in_executor(None, self.store.model_version, collection)
        vector, via = await self.query_vector(topology, query, serving)
        (hits,) = await loop.run_in_executor(
            None,
            lambda: self.store.search(
                collection, vector[None, :], top_k=query.top_k, filter_expr=where
            ),
        )
        media = topology.media_type
        return {
            "topology": topology.name,
            "collection": collection,
            "via": via,
            "hits": [
                {
                    "id": h.id,
                    "score": round(h.score, 4),
                    "uri": h.uri,
                    "text": h.text,
                    "metadata": h.metadata,
                    "thumbnail": media == "image" and bool(h.uri),
                }
                for h in hits
            ],
        }

    async def query_vector(
        self, topology: Topology, query: PageQuery, serving: str | None
    ) -> tuple[Vector, str]:
        """The query's vector for the collection ``serving`` (its model version; ``None``: the
        declared one), and how it was made (said on the page)."""
        loop = asyncio.get_running_loop()
        if query.asset_id:
            row = await loop.run_in_executor(None, self.row, topology, query.asset_id)
            assert row.vector is not None
            return np.asarray(row.vector, dtype=np.float32), f"the vector of {query.asset_id!r}"
        version = serving or topology.model_version
        if version not in topology.versions():
            raise PageError(
                f"{topology.name!r} is served by {version!r}, which this page's topology does "
                f"not declare ({topology.versions()}): search with an asset's id"
            )
        kind = "image" if query.image else "text"
        try:
            embedder, embed_version = embedding_topology(
                self.topologies.values(), topology, version, kind
            )
        except QueryError as exc:
            if query.text:
                return await self._from_classes(topology, version, query.text)
            raise PageError(str(exc)) from exc
        plan = await loop.run_in_executor(None, self.plans.get, embedder, embed_version)
        if query.image:  # the bytes, as fetched: the plan's stages after its fetch
            (out,) = await self.runner.run(plan, [query.image], ids=["query"], first=1)
        else:
            (out,) = await self.runner.run(plan, [Source(text=query.text)], ids=["query"])
        if isinstance(out, StageError):
            raise PageError(f"the {kind} cannot be searched with: {out.stage}: {out.cause}")
        return np.asarray(out, dtype=np.float32), f"{embedder.name} ({embed_version})"

    async def _from_classes(
        self, topology: Topology, version: str, text: str
    ) -> tuple[Vector, str]:
        from topologies.image import CLASSIFIED_SPACES

        space = topology.space_of(version)
        model = CLASSIFIED_SPACES.get(space or "")
        texts = next((t for t in self.topologies.values() if t.media_type == "text"), None)
        if model is None or texts is None:
            raise PageError(
                f"a text cannot search {topology.name!r}: no text topology embeds into its space"
            )
        loop = asyncio.get_running_loop()
        text_plan = await loop.run_in_executor(None, self.plans.get, texts, None)

        def embed(items: list[str]) -> npt.NDArray[np.float32]:
            outs = asyncio.run(self.runner.run(text_plan, [Source(text=t) for t in items]))
            return np.stack(outs).astype(np.float32)

        def bridge() -> ClassBridge:
            from operators.imagenet import imagenet_classes

            with self._bridge_lock:
                if space not in self._bridges:
                    names, rows = imagenet_classes(model)
                    self._bridges[space or ""] = ClassBridge.build(names, rows, embed)
                return self._bridges[space or ""]

        made = await loop.run_in_executor(None, bridge)
        vector = await loop.run_in_executor(None, embed, [text])
        start = made.start(vector[0])
        classes = ", ".join(name.split(",")[0] for name, _ in start.classes[:3])
        return start.vector, f"the image model's classes its words match: {classes}"
