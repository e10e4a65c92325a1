"""Saved classifiers: one Redis hash (``{prefix}:classifiers``), a classifier's JSON per name.

What the query trainer saves, what ``streamer classifiers`` lists, shows, exports, imports and
deletes. A name is taken once: saving over it must say so (``replace``).
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
        """Delete ``name``; whether it was there."""
        return bool(self.client.hdel(self.key, name))
