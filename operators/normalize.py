"""L2 normalisation: every stored vector has unit norm, so inner product is cosine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from streamer.core.errors import EmbedError
from streamer.runner.operator import VECTOR, CpuOperator, Embedded, Vector, WithParts

__all__ = ["Normalize", "l2_normalize", "unit"]


def l2_normalize(vectors: npt.ArrayLike, *, eps: float = 1e-12) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (a zero row stays zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, eps)


class Normalize(CpuOperator[Embedded, Embedded]):
    """A vector scaled to unit length, so that inner product is cosine. A zero or non-finite
    vector has no direction: it is that item's error, never a stored row. An asset's parts
    (:class:`~streamer.runner.operator.WithParts`) are scaled alike, each on its own."""

    name = "normalize"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError

    def apply(self, item: Embedded) -> Embedded:
        if isinstance(item, WithParts):
            return WithParts(
                unit(item.vector),
                tuple(replace(p, vector=unit(p.vector, part=p.key)) for p in item.parts),
            )
        return unit(item)


def unit(item: Vector, *, part: str | None = None) -> Vector:
    """``item`` scaled to unit length; an :class:`EmbedError` when it has no direction."""
    vector = np.asarray(item, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        where = f" (part {part!r})" if part else ""
        raise EmbedError(f"cannot normalise a vector{where} of norm {norm}")
    return vector / norm
