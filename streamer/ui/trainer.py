"""The query trainer behind the page: training sessions kept in this process, by id.

A session starts from the search form's query (a text, a photo, an asset's id) or from a saved
classifier, over the serving collection of one topology. Each round shows results not shown
before in the session (:class:`~streamer.trainer.TrainingSession`); the page sends the labels
of those it moved a slider for, the session trains and shows the next round. Reset starts
again from the query; save writes the classifier under a name (never over another unless
asked). Sessions idle for an hour are forgotten; at most ``MAX_SESSIONS`` are kept.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

from streamer.config.connections import redis_client
from streamer.trainer import (
    Classifier,
    ClassifierError,
    SavedClassifiers,
    StoreIndex,
    TrainingSession,
)
from streamer.ui.search import PageError, PageQuery, PageSearch

__all__ = ["PageTrainer"]

MAX_SESSIONS = 64
IDLE_S = 3600.0


@dataclass
class _Session:
    training: TrainingSession
    topology: str
    index: StoreIndex
    started_from: str
    shown: dict[str, npt.NDArray[Any]] = field(default_factory=dict)  # last round's vectors
    used: float = field(default_factory=time.monotonic)


class PageTrainer:
    def __init__(self, search: PageSearch) -> None:
        self.search = search
        self.saved = SavedClassifiers(
            redis_client(search.settings.redis), search.settings.redis.key_prefix
        )
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _get(self, session_id: str) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise PageError("this training session is over (idle, or the server restarted)")
        session.used = time.monotonic()
        return session

    def _keep(self, session: _Session) -> str:
        session_id = secrets.token_urlsafe(12)
        with self._lock:
            now = time.monotonic()
            for old in [k for k, s in self._sessions.items() if now - s.used > IDLE_S]:
                del self._sessions[old]
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=lambda k: self._sessions[k].used)]
            self._sessions[session_id] = session
        return session_id

    async def start(self, query: PageQuery, classifier: str | None) -> dict[str, Any]:
        topology = self.search.topology(query.topology)
        loop = asyncio.get_running_loop()
        settings = self.search.settings.trainer
        saved = None
        if classifier:
            saved = await loop.run_in_executor(None, self.saved.get, classifier)
            if saved.topology != topology.name:
                raise PageError(
                    f"{classifier!r} classifies {saved.topology!r}, not {topology.name!r}"
                )
        collection = await loop.run_in_executor(None, self.search.collection, topology)
        serving = await loop.run_in_executor(None, self.search.store.model_version, collection)
        if saved is not None:
            if serving and saved.model_version != serving:
                raise PageError(
                    f"{classifier!r} was trained on {saved.model_version!r}; {serving!r} serves "
                    f"{topology.name!r} now: its vectors are of another model"
                )
            training = TrainingSession.from_classifier(saved, settings)
            via = f"the classifier {classifier!r}"
        else:
            query.check()
            vector, via = await self.search.query_vector(topology, query, serving)
            training = TrainingSession.from_query(
                vector,
                topology=topology.name,
                model_version=serving or topology.model_version,
                settings=settings,
            )
            if query.asset_id:
                training.seen.add(query.asset_id)  # the example itself is no result to label
        index = StoreIndex(self.search.store, collection)
        session_id = self._keep(_Session(training, topology.name, index, via))
        return {"session": session_id, "via": via, **await self._round(self._get(session_id))}

    async def _round(self, session: _Session) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        candidates = await loop.run_in_executor(None, session.training.next, session.index)
        session.shown = {c.id: c.vector for c in candidates}
        media = self.search.topology(session.topology).media_type
        rows = await loop.run_in_executor(
            None, self.search.store.read_rows, session.index.collection, list(session.shown)
        )
        training = session.training
        return {
            "topology": session.topology,
            "round": training.rounds,
            "labels": len(training.labels),
            "positives": training.positives,
            "candidates": [
                {
                    "id": c.id,
                    "logit": round(c.logit, 3),
                    "why": c.why,
                    "uri": rows[c.id].uri if c.id in rows else "",
                    "thumbnail": media == "image" and c.id in rows and bool(rows[c.id].uri),
                }
                for c in candidates
            ],
        }

    async def train(self, session_id: str, labels: dict[str, float]) -> dict[str, Any]:
        """Label the last round's results (``id -> -1..+1``), train, show the next round."""
        session = self._get(session_id)
        for asset_id, value in labels.items():
            if asset_id not in session.shown:
                raise PageError(f"{asset_id!r} was not shown in this round")
            try:
                session.training.label(asset_id, session.shown[asset_id], float(value))
            except (TypeError, ValueError) as exc:
                raise PageError(f"a label goes from -1 to +1: {exc}") from exc
        await asyncio.get_running_loop().run_in_executor(None, session.training.train)
        return await self._round(session)

    async def reset(self, session_id: str) -> dict[str, Any]:
        session = self._get(session_id)
        try:
            session.training.reset()
        except ClassifierError as exc:
            raise PageError(str(exc)) from exc
        return await self._round(session)

    async def save(self, session_id: str, name: str, *, replace: bool) -> dict[str, Any]:
        session = self._get(session_id)
        try:
            classifier = session.training.classifier(name)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.saved.save(classifier, replace=replace)
            )
        except ClassifierError as exc:
            raise PageError(str(exc)) from exc
        return {"saved": classifier.name, "labels": classifier.labels}

    async def classifiers(self) -> list[dict[str, Any]]:
        def listed() -> tuple[list[Classifier], set[str]]:
            return self.saved.all(), set(self.saved.attached_names())

        found, attached = await asyncio.get_running_loop().run_in_executor(None, listed)
        return [
            {
                "name": c.name,
                "topology": c.topology,
                "model_version": c.model_version,
                "labels": c.labels,
                "positives": c.positives,
                "attached": c.name in attached,
            }
            for c in found
        ]

    async def attach(self, name: str, attach: bool) -> dict[str, Any]:
        """Attach ``name`` to the stream (its workers label new rows with it), or detach it."""

        def toggle() -> bool:
            if attach:
                self.saved.attach(name)
                return True
            self.saved.detach(name)
            return False

        try:
            attached = await asyncio.get_running_loop().run_in_executor(None, toggle)
        except ClassifierError as exc:
            raise PageError(str(exc)) from exc
        return {"name": name, "attached": attached}
