"""A text's image query from class names, with small made-up spaces: the classes whose names
match the text best weigh most, and the query is the unit mean of their rows."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.trainer import ClassBridge


def bridge() -> ClassBridge:
    names = ["cat", "dog", "cup"]
    name_vectors = np.eye(3, 4, dtype=np.float32)  # names: the first three axes of text space
    class_rows = 5.0 * np.eye(3, 6, k=2, dtype=np.float32)  # classes: axes 2..4 of image space
    return ClassBridge(names, name_vectors, class_rows)


def test_the_best_matching_class_leads_and_the_query_is_unit() -> None:
    start = bridge().start([0.9, 0.1, 0.0, 0.0], classes=2, temperature=0.05)
    assert [name for name, _ in start.classes] == ["cat", "dog"]
    cat, dog = (weight for _, weight in start.classes)
    assert cat > 0.99 and dog < 0.01 and cat + dog == pytest.approx(1.0)
    assert np.linalg.norm(start.vector) == pytest.approx(1.0)
    assert int(np.argmax(start.vector)) == 2  # the cat's row (scaled rows count as unit)


def test_a_text_between_two_classes_starts_between_them() -> None:
    start = bridge().start([1.0, 1.0, 0.0, 0.0], classes=2)
    np.testing.assert_allclose(start.vector, [0, 0, 2**-0.5, 2**-0.5, 0, 0], atol=1e-6)


def test_class_names_are_embedded_as_photo_captions() -> None:
    seen: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return np.eye(len(texts), dtype=np.float32)

    ClassBridge.build(["tabby, tabby cat", "mug"], np.eye(2, dtype=np.float32), embed)
    assert seen == ["a photo of a tabby, tabby cat", "a photo of a mug"]


def test_mismatched_names_and_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="2 names, 3 name vectors"):
        ClassBridge(["a", "b"], np.eye(3), np.eye(3))
