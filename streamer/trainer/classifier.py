"""A trained classifier as it is saved and used: weights and a bias over one topology's vectors
(one model version: a classifier of another version's vectors means nothing), and where it
came from (when, from how many labels)."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streamer.core.errors import StreamerError

__all__ = ["Classifier", "ClassifierError"]

#: a classifier's name: a label in metadata and a key, so plain
NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ClassifierError(StreamerError):
    """A classifier that cannot be made, read or applied as given."""


@dataclass(frozen=True, eq=False)
class Classifier:
    """``logit(x) = weights @ x + bias`` over unit vectors of ``topology`` at ``model_version``;
    positive where the logit is above 0 (a probability above one half)."""

    name: str
    topology: str
    model_version: str
    weights: npt.NDArray[np.float32]
    bias: float
    labels: int = 0
    positives: int = 0
    trained_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ClassifierError(
                f"classifier name {self.name!r}: lower-case letters, digits, '-' and '_', "
                "starting with a letter, at most 64"
            )
        given = np.asarray(self.weights, dtype=np.float64)
        if given.ndim != 1 or given.size == 0:
            raise ClassifierError(f"classifier {self.name!r}: weights are one list of numbers")
        if not (np.isfinite(given).all() and np.abs(given).max() <= _FLOAT32_MAX):
            raise ClassifierError(f"classifier {self.name!r}: weights must be finite float32s")
        if not math.isfinite(self.bias):
            raise ClassifierError(f"classifier {self.name!r}: the bias must be finite")
        object.__setattr__(self, "weights", given.astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.weights.size)

    def logits(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """One logit per row of ``vectors`` (one matrix product)."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ClassifierError(
                f"classifier {self.name!r} takes vectors of {self.dim}, got shape {x.shape}"
            )
        return np.asarray(x @ self.weights + np.float32(self.bias), dtype=np.float32)

    def probabilities(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        logits = self.logits(vectors).astype(np.float64)
        return np.exp(-np.logaddexp(0.0, -logits)).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topology": self.topology,
            "model_version": self.model_version,
            "dim": self.dim,
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            "labels": self.labels,
            "positives": self.positives,
            "trained_at": self.trained_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> Classifier:
        try:
            weights: npt.NDArray[Any] = np.asarray(data["weights"], dtype=np.float64)
            if "dim" in data and int(data["dim"]) != weights.size:
                raise ClassifierError(f"{data['dim']} declared, {weights.size} weights")
            return cls(
                name=str(data["name"]),
                topology=str(data["topology"]),
                model_version=str(data["model_version"]),
                weights=weights,
                bias=float(data["bias"]),
                labels=int(data.get("labels", 0)),
                positives=int(data.get("positives", 0)),
                trained_at=float(data.get("trained_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ClassifierError(f"not a saved classifier: {type(exc).__name__}: {exc}") from exc
