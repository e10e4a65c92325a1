"""One training session: the loop of search, label, train, search again.

A round shows ``round_size`` results not seen before in this session: most from the top of the
current classifier's ranking (what it is surest of), a share (``explore``) from its decision
boundary (what it is least sure of, where a label teaches most) once it has been trained. The
user labels them from -1 (no) to +1 (yes), 0 meaning "cannot tell" (not learnt from); training
fits the classifier to every label so far, starting where the last round left it, and its
weights are the next round's query. What was shown is remembered by the session, never by
changing anyone's rows. The query a session starts from counts as one positive example.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from streamer.config.settings import TrainerSettings
from streamer.trainer.classifier import Classifier, ClassifierError
from streamer.trainer.learn import fit, targets_of

__all__ = ["Candidate", "MemoryIndex", "TrainingSession", "VectorIndex"]

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A result shown to label: its id and vector, its logit under the classifier that chose
    it, and why it was chosen (``top`` or ``boundary``)."""

    id: str
    vector: Vector
    logit: float
    why: str


class VectorIndex(Protocol):
    """Where a session finds results: the vectors of one topology's version, by id."""

    def top(self, weights: Vector, k: int, exclude: Collection[str]) -> list[tuple[str, Vector]]:
        """The ``k`` vectors of highest ``weights @ x``, none of ``exclude``."""
        ...

    def near(
        self, weights: Vector, threshold: float, k: int, exclude: Collection[str]
    ) -> list[tuple[str, Vector]]:
        """The ``k`` vectors whose ``weights @ x`` is nearest ``threshold``, none of
        ``exclude``."""
        ...


class MemoryIndex:
    """Vectors held in this process, searched exactly (benchmarks, tests, local runs)."""

    def __init__(self, ids: Sequence[str], vectors: npt.ArrayLike) -> None:
        self.ids = list(ids)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        if self.vectors.shape[0] != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids for {self.vectors.shape[0]} vectors")
        self._row = {asset_id: i for i, asset_id in enumerate(self.ids)}

    def _ranked(self, keys: npt.NDArray[np.float32], k: int, exclude: Collection[str]) -> list[int]:
        keys = keys.copy()
        keys[[self._row[i] for i in exclude if i in self._row]] = np.inf
        order = np.argsort(keys, kind="stable")
        return [int(i) for i in order[:k] if np.isfinite(keys[i])]

    def top(self, weights: Vector, k: int, exclude: Collection[str]) -> list[tuple[str, Vector]]:
        rows = self._ranked(-(self.vectors @ weights), k, exclude)
        return [(self.ids[i], self.vectors[i]) for i in rows]

    def near(
        self, weights: Vector, threshold: float, k: int, exclude: Collection[str]
    ) -> list[tuple[str, Vector]]:
        rows = self._ranked(np.abs(self.vectors @ weights - threshold), k, exclude)
        return [(self.ids[i], self.vectors[i]) for i in rows]


@dataclass
class TrainingSession:
    """The state of one session: the classifier so far, what was shown, what was labelled."""

    weights: npt.NDArray[np.float64]
    bias: float = 0.0
    topology: str = ""
    model_version: str = ""
    settings: TrainerSettings = field(default_factory=TrainerSettings)
    anchor: Vector | None = None  # the query it started from: one positive example
    trained: bool = False
    rounds: int = 0
    seen: set[str] = field(default_factory=set)
    labels: dict[str, tuple[Vector, float]] = field(default_factory=dict)

    @classmethod
    def from_query(
        cls,
        query: npt.ArrayLike,
        *,
        topology: str = "",
        model_version: str = "",
        settings: TrainerSettings | None = None,
    ) -> TrainingSession:
        """A session whose classifier starts as the query: its unit vector, bias 0."""
        vector = np.asarray(query, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise ClassifierError("a training session needs a query vector with a direction")
        return cls(
            weights=vector / norm,
            topology=topology,
            model_version=model_version,
            settings=settings or TrainerSettings(),
            anchor=(vector / norm).astype(np.float32),
        )

    @classmethod
    def from_classifier(
        cls, classifier: Classifier, settings: TrainerSettings | None = None
    ) -> TrainingSession:
        """A session that goes on training a saved classifier (its labels are not kept: new
        ones refine it from where it stands)."""
        return cls(
            weights=classifier.weights.astype(np.float64),
            bias=classifier.bias,
            topology=classifier.topology,
            model_version=classifier.model_version,
            settings=settings or TrainerSettings(),
            trained=True,
        )

    @property
    def query(self) -> Vector:
        """The vector to search with: the classifier's weights, unit length."""
        return (self.weights / max(float(np.linalg.norm(self.weights)), 1e-12)).astype(np.float32)

    def next(self, index: VectorIndex, k: int | None = None) -> list[Candidate]:
        """The next round's results (``k``, default ``round_size``): none shown before; marked
        as shown."""
        k = self.settings.round_size if k is None else k
        if k <= 0:
            return []
        weights = self.weights.astype(np.float32)
        boundary = round(k * self.settings.explore) if self.trained else 0
        chosen: dict[str, tuple[Vector, str]] = {}
        if boundary:
            for asset_id, vector in index.near(weights, -self.bias, boundary, self.seen):
                chosen[asset_id] = (vector, "boundary")
        wanted = k - len(chosen)
        for asset_id, vector in index.top(weights, wanted, self.seen | set(chosen)):
            chosen[asset_id] = (vector, "top")
        self.seen.update(chosen)
        self.rounds += 1
        picked = [
            Candidate(i, v, float(v.astype(np.float64) @ self.weights + self.bias), why)
            for i, (v, why) in chosen.items()
        ]
        return sorted(picked, key=lambda c: -c.logit)

    def label(self, asset_id: str, vector: npt.ArrayLike, value: float) -> None:
        """Label one result from -1 (no) to +1 (yes); 0 takes a label back."""
        targets_of([value])  # checks the scale
        if value == 0:
            self.labels.pop(asset_id, None)
            return
        self.labels[asset_id] = (np.asarray(vector, dtype=np.float32).reshape(-1), float(value))
        self.seen.add(asset_id)

    def train(self) -> None:
        """Fit the classifier to every label so far (and the query it started from)."""
        vectors = [v for v, _ in self.labels.values()]
        values = [value for _, value in self.labels.values()]
        if self.anchor is not None:
            vectors.append(self.anchor)
            values.append(1.0)
        if not vectors:
            return
        settings = self.settings
        self.weights, self.bias = fit(
            self.weights,
            self.bias,
            np.stack(vectors),
            targets_of(values),
            learning_rate=settings.learning_rate,
            steps=settings.steps,
            balanced=settings.balanced,
        )
        self.trained = True

    def reset(self) -> None:
        """Forget what was shown and labelled; the classifier starts again from the query."""
        if self.anchor is None:
            raise ClassifierError("this session started from a saved classifier: start anew")
        self.weights, self.bias = self.anchor.astype(np.float64), 0.0
        self.trained, self.rounds = False, 0
        self.seen.clear()
        self.labels.clear()

    @property
    def positives(self) -> int:
        return sum(1 for _, value in self.labels.values() if value > 0)

    def classifier(self, name: str) -> Classifier:
        """The classifier as it stands, to save under ``name``."""
        return Classifier(
            name=name,
            topology=self.topology,
            model_version=self.model_version,
            weights=self.weights.astype(np.float32),
            bias=float(self.bias),
            labels=len(self.labels),
            positives=self.positives,
        )
