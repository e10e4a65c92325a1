"""Text to an image query without a multimodal model: through the image model's classes.

The image model's ImageNet classification layer is 1,000 vectors in the image embedding
space. A text is matched to the class names with the text model (cosine of their embeddings),
and the image query starts from the best-matching classes' weight rows (unit length, weighed
by a softmax of the matches): "a cup of coffee" matches "coffee mug", "coffeepot" and "cup",
and finds photos of coffee. A query of this kind is a start for the query trainer, not a
substitute for a model trained on texts and images together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ClassBridge", "TextStart"]

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TextStart:
    """An image query made from a text, and the classes it was made of (name, weight)."""

    vector: Vectors
    classes: tuple[tuple[str, float], ...]


class ClassBridge:
    """The classes' names embedded by the text model, beside their rows in the image space."""

    def __init__(
        self, names: Sequence[str], name_vectors: npt.ArrayLike, class_weights: npt.ArrayLike
    ) -> None:
        self.names = list(names)
        self.name_vectors = _unit_rows(name_vectors)
        self.class_vectors = _unit_rows(class_weights)
        if not len(self.names) == len(self.name_vectors) == len(self.class_vectors):
            raise ValueError(
                f"{len(self.names)} names, {len(self.name_vectors)} name vectors and "
                f"{len(self.class_vectors)} class rows"
            )

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        class_weights: npt.ArrayLike,
        embed_texts: Callable[[list[str]], npt.ArrayLike],
    ) -> ClassBridge:
        """Embed each class description (``"tabby, tabby cat"``) as ``"a photo of a tabby,
        tabby cat"`` with ``embed_texts`` (the text topology)."""
        return cls(names, embed_texts([f"a photo of a {name}" for name in names]), class_weights)

    def start(
        self, text_vector: npt.ArrayLike, *, classes: int = 5, temperature: float = 0.05
    ) -> TextStart:
        """The image query of a text (its vector from the same text model): the unit mean of
        the ``classes`` best-matching classes' rows, weighed by ``softmax(cosine /
        temperature)``."""
        text = np.asarray(text_vector, dtype=np.float32).reshape(-1)
        text = text / max(float(np.linalg.norm(text)), 1e-12)
        similarity = self.name_vectors @ text
        best = np.argsort(-similarity, kind="stable")[: max(1, classes)]
        logits = (similarity[best] - similarity[best].max()) / temperature
        weights = np.exp(logits) / np.exp(logits).sum()
        query = (weights[:, None] * self.class_vectors[best]).sum(axis=0)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        chosen = zip(best, weights, strict=True)
        return TextStart(
            query.astype(np.float32), tuple((self.names[i], round(float(w), 4)) for i, w in chosen)
        )


def _unit_rows(values: npt.ArrayLike) -> Vectors:
    rows = np.asarray(values, dtype=np.float32)
    if rows.ndim != 2:
        raise ValueError(f"expected one vector per class, got shape {rows.shape}")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
