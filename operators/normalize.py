"""L2 normalisation: every stored vector has unit norm, so inner product is cosine."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["l2_normalize"]


def l2_normalize(vectors: npt.ArrayLike, *, eps: float = 1e-12) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, eps)
