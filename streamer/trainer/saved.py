"""Saved classifiers: one Redis hash (``{prefix}:classifiers``), a classifier's JSON per name,
and the set of those attached to the stream (``{prefix}:classifiers:attached``).

What the query trainer saves, what ``streamer classifiers`` lists, shows, exports, imports,
attaches, detaches and deletes. A name is taken once: saving over it must say so (``replace``);
an attached classifier saved over is what the workers apply from their next look. Deleting one
detaches it.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from streamer.trainer.classifier import Classifier, ClassifierError

__all__ = ["SavedClassifiers"]


class SavedClassifiers:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}:classifiers"
        self.attached_key = f"{prefix}:classifiers:attached"

    def save(self, classifier: Classifier, *, replace: bool = False) -> None:
        """Save ``classifier`` under its name; a name taken raises unless ``replace``."""
        value = json.dumps(classifier.to_json())
        if replace:
            self.client.hset(self.key, classifier.name, value)
        elif not self.client.hsetnx(self.key, classifier.name, value):
            raise ClassifierError(
                f"a classifier named {classifier.name!r} is saved already: choose another name, "
                "or replace it"
            )

    def get(self, name: str) -> Classifier:
        raw: Any = self.client.hget(self.key, name)
        if raw is None:
            raise ClassifierError(f"no classifier named {name!r} (saved: {self.names()})")
        return Classifier.from_json(json.loads(raw))

    def names(self) -> list[str]:
        keys: Any = self.client.hkeys(self.key)
        return sorted(n.decode() for n in keys)

    def all(self, topology: str | None = None) -> list[Classifier]:
        """Every saved classifier (of ``topology``), by name."""
        raw: Any = self.client.hgetall(self.key)
        found = [Classifier.from_json(json.loads(value)) for value in raw.values()]
        return sorted(
            (c for c in found if topology is None or c.topology == topology), key=lambda c: c.name
        )

    def delete(self, name: str) -> bool:
        """Delete ``name`` (detached first); whether it was there."""
        self.client.srem(self.attached_key, name)
        return bool(self.client.hdel(self.key, name))

    def attach(self, name: str) -> Classifier:
        """Attach ``name`` to the stream: workers score every new row of its topology and model
        version with it. Returns it; an unknown name raises."""
        classifier = self.get(name)
        self.client.sadd(self.attached_key, name)
        return classifier

    def detach(self, name: str) -> bool:
        """Detach ``name``; whether it was attached."""
        return bool(self.client.srem(self.attached_key, name))

    def attached_names(self) -> list[str]:
        names: Any = self.client.smembers(self.attached_key)
        return sorted(n.decode() for n in names)

    def attached(self) -> list[Classifier]:
        """The attached classifiers (a name attached but since deleted is left out), by name."""
        names = self.attached_names()
        if not names:
            return []
        raw: Any = self.client.hmget(self.key, names)
        return [Classifier.from_json(json.loads(v)) for v in raw if v is not None]
