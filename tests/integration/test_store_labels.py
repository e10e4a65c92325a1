"""The labels of attached classifiers in stored rows, searched with a ``label:<name>`` filter on
milvus-lite and on a Milvus server: the nested JSON path works on both, rows a classifier never
scored match neither true nor false, and the label filter composes with a metadata filter."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.ingest.labels import label_rows
from streamer.query.filters import build_filter
from streamer.storage.store import VectorRow
from streamer.trainer import Classifier
from tests.integration.conftest import BOTH_MILVUS, Scenario

pytestmark = [pytest.mark.integration, BOTH_MILVUS]


def test_label_filters_find_the_rows_each_classifier_labelled(scenario: Scenario) -> None:
    store = scenario.store
    collection = f"{scenario.settings.milvus.collection_prefix}labels"
    store.ensure_collection(collection, 2)
    # "right" is positive where x > 0; "up" where y > 0
    right = Classifier("right", "t", "v@1", np.array([8.0, 0.0]), 0.0)
    up = Classifier("up", "t", "v@1", np.array([0.0, 8.0]), 0.0)
    points = {"ne": (1, 1), "nw": (-1, 1), "se": (1, -1), "sw": (-1, -1)}
    rows = [
        VectorRow(name, np.array(xy, dtype=np.float32) / np.sqrt(2), "h", "v@1", "image",
                  metadata={"tenant": "a" if name[0] == "n" else "b"})
        for name, xy in points.items()
    ]  # fmt: skip
    unscored = VectorRow("plain", np.array([1.0, 0.0], dtype=np.float32), "h", "v@1", "image")
    store.upsert(collection, [*label_rows([right, up], rows), unscored])
    scenario.wait_searchable(collection)

    def found(filters: dict[str, object]) -> list[str]:
        where = build_filter(filters, ["tenant"])
        (hits,) = store.search(collection, np.array([[1.0, 0.0]]), top_k=10, filter_expr=where)
        return sorted(h.id for h in hits)

    assert found({"label:right": True}) == ["ne", "se"]
    assert found({"label:right": "false"}) == ["nw", "sw"]
    assert found({"label:up": True}) == ["ne", "nw"]
    assert found({"label:up": True, "tenant": "b"}) == []
    assert found({"label:right": True, "tenant": "b"}) == ["se"]
    assert found({"label:unknown": True}) == []
    assert found({}) == ["ne", "nw", "plain", "se", "sw"]
