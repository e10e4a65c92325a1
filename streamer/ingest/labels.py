"""Classifiers on the stream: the saved classifiers attached to a topology score every row a
batch writes, in one matrix product per batch and model version.

A row's verdicts go into its metadata under :data:`~streamer.core.messages.LABELS_KEY`
(``{"cats": {"score": 0.93, "label": true}}``: searchable with the filter ``label:cats``) and,
once the row is stored, onto ``media.labels`` as a :class:`~streamer.core.messages.LabelEvent`.
A classifier applies to the rows of its topology at its model version only (its weights mean
nothing in another version's space); the attached set is read again every ``refresh_s``, so
attaching, detaching or saving over one reaches running workers without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import redis

from streamer.core.messages import LABELS_KEY, LabelEvent, Verdict
from streamer.storage.store import PART_OF, VectorRow
from streamer.trainer.classifier import Classifier, ClassifierError

__all__ = ["AttachedClassifiers", "label_events", "label_rows"]

log = logging.getLogger(__name__)


class AttachedClassifiers:
    """The attached classifiers as a worker sees them: read through ``read`` (e.g.
    :meth:`SavedClassifiers.attached <streamer.trainer.saved.SavedClassifiers.attached>`) at
    most every ``refresh_s``."""

    def __init__(
        self,
        read: Callable[[], Sequence[Classifier]],
        *,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.refresh_s = refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._known: tuple[Classifier, ...] = ()
        self._names: tuple[str, ...] = ()

    def __call__(self, topology: str, version: str) -> list[Classifier]:
        """The attached classifiers of ``topology`` at ``version`` (blocking: may read Redis).
        Redis down, or a saved classifier unreadable, is a warning: the set last seen stays
        (Redis is a cache of work elsewhere in the ingest path, never a reason to stop)."""
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.refresh_s:
                try:
                    self._known = tuple(self.read())
                except (redis.RedisError, ClassifierError) as exc:
                    # like the rollout registry: labelling goes on with the set last seen
                    # (none before the first read), and asks again at the next refresh
                    log.warning(
                        "attached classifiers unreadable: using the last seen",
                        extra={"error": str(exc), "classifiers": list(self._names)},
                    )
                else:
                    names = tuple(c.name for c in self._known)
                    if names != self._names:
                        log.info("attached classifiers", extra={"classifiers": list(names)})
                        self._names = names
                self._read_at = now
            known = self._known
        return [c for c in known if c.topology == topology and c.model_version == version]


def label_rows(classifiers: Sequence[Classifier], rows: Sequence[VectorRow]) -> list[VectorRow]:
    """``rows`` with the verdicts of ``classifiers`` in their metadata: one matrix product for
    all of them. A classifier whose dimension is not the rows' is left out (logged)."""
    if not classifiers or not rows:
        return list(rows)
    dim = int(np.asarray(rows[0].vector).size)
    fitting = [c for c in classifiers if c.dim == dim]
    for c in classifiers:
        if c.dim != dim:
            log.error(
                "classifier does not fit the rows: not applied",
                extra={"classifier": c.name, "weights": c.dim, "vectors": dim},
            )
    if not fitting:
        return list(rows)
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows])
    weights = np.stack([c.weights for c in fitting], axis=1)  # dim x classifiers
    biases = np.asarray([c.bias for c in fitting], dtype=np.float64)
    logits = (vectors @ weights).astype(np.float64) + biases
    scores = np.exp(-np.logaddexp(0.0, -logits))  # the sigmoid, without overflow
    names = [c.name for c in fitting]
    labelled = []
    # plain Python numbers, converted once for the whole batch
    for row, row_scores, row_labels in zip(
        rows, scores.round(6).tolist(), (scores >= 0.5).tolist(), strict=True
    ):
        verdicts = {
            name: {"score": score, "label": label}
            for name, score, label in zip(names, row_scores, row_labels, strict=True)
        }
        labelled.append(replace(row, metadata={**row.metadata, LABELS_KEY: verdicts}))
    return labelled


def label_events(topology: str, rows: Sequence[VectorRow]) -> list[LabelEvent]:
    """The ``media.labels`` events of stored rows that carry verdicts."""
    now_ms = time.time() * 1000
    events = []
    for row in rows:
        verdicts = row.metadata.get(LABELS_KEY)
        if not verdicts:
            continue
        part_of = row.metadata.get(PART_OF)
        # made here from checked numbers: not validated again (a third of the labelling cost)
        events.append(
            LabelEvent.model_construct(
                id=row.id,
                topology=topology,
                model_version=row.model_version,
                media_type=row.media_type,
                uri=row.uri or None,
                part_of=part_of if isinstance(part_of, str) else None,
                labels={name: Verdict.model_construct(**v) for name, v in verdicts.items()},
                labelled_ms=now_ms,
            )
        )
    return events
