"""L2 normalisation: every stored vector has unit norm, so inner product is cosine."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streamer.core.errors import EmbedError
from streamer.runner.operator import VECTOR, CpuOperator, Vector

__all__ = ["Normalize", "l2_normalize"]


def l2_normalize(vectors: npt.ArrayLike, *, eps: float = 1e-12) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, eps)


class Normalize(CpuOperator[Vector, Vector]):
    """A vector scaled to unit length, so that inner product is cosine. A zero or non-finite
    vector has no direction: it is that item's error, never a stored row."""

    name = "normalize"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError

    def apply(self, item: Vector) -> Vector:
        vector = np.asarray(item, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise EmbedError(f"cannot normalise a vector of norm {norm}")
        return vector / norm
