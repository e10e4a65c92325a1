"""Fitting a linear classifier to labels: full-batch gradient descent on the binary
cross-entropy of the logits, labels from -1 to +1 taken as targets from 0 to 1.

The labels of a training session are few (tens to hundreds), so each round runs every step over
all of them; weights start where the last round left them (the first round: from the query).
With ``balanced``, positive and negative labels weigh alike however many there are of each: the
first rounds show mostly positives, and without it the bias would call everything positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["fit", "targets_of"]

Array = npt.NDArray[np.float64]


def targets_of(labels: Sequence[float]) -> Array:
    """Labels on the scale -1 (no) to +1 (yes) as targets from 0 to 1; 0 is "cannot tell"."""
    values = np.asarray(labels, dtype=np.float64)
    if values.size and (not np.isfinite(values).all() or np.abs(values).max() > 1):
        raise ValueError(f"labels go from -1 to +1, got {values.min()} to {values.max()}")
    return (values + 1.0) / 2.0


def _sigmoid(logits: Array) -> Array:
    return np.exp(-np.logaddexp(0.0, -logits))  # 1 / (1 + e^-z), without overflow


def fit(
    weights: npt.ArrayLike,
    bias: float,
    vectors: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    learning_rate: float,
    steps: int,
    balanced: bool = True,
) -> tuple[Array, float]:
    """``steps`` steps of gradient descent from ``weights`` and ``bias`` on the mean (weighted,
    with ``balanced``) binary cross-entropy of ``vectors @ weights + bias`` against ``targets``
    (0 to 1). Returns the new weights and bias."""
    w = np.array(weights, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or x.shape != (t.size, w.size):
        raise ValueError(f"{x.shape} vectors for {t.size} targets and {w.size} weights")
    if t.size == 0:
        return w, float(bias)
    weight = np.ones_like(t)
    if balanced:
        # a target of 0.5 counts half to each side
        positive, negative = t.sum(), (1.0 - t).sum()
        if positive > 0 and negative > 0:
            weight = t * (t.size / (2 * positive)) + (1.0 - t) * (t.size / (2 * negative))
    b = float(bias)
    for _ in range(steps):
        error = (_sigmoid(x @ w + b) - t) * weight
        w -= learning_rate * (x.T @ error) / t.size
        b -= learning_rate * float(error.mean())
    return w, b
