"""A trained classifier as saved and applied: its JSON round trip, its logits and
probabilities, and what it refuses (names, non-finite numbers, vectors of another dimension,
saved data that is not a classifier)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest

from streamer.core.errors import StreamerError
from streamer.trainer.classifier import Classifier, ClassifierError


def make(name: str = "cats", weights: Any = (0.5, -1.25, 2.0), bias: float = 0.25) -> Classifier:
    return Classifier(
        name=name,
        topology="photos",
        model_version="clip-b32@2",
        weights=np.asarray(weights, dtype=np.float32),
        bias=bias,
        labels=12,
        positives=5,
        trained_at=1_700_000_000.5,
    )


def saved(**changes: Any) -> dict[str, Any]:
    """A classifier's JSON with ``changes``; a change to ``None`` drops the key."""
    data = make().to_json()
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_json_round_trip_keeps_every_field() -> None:
    rng = np.random.default_rng(0)
    original = make(weights=rng.normal(size=64).astype(np.float32), bias=-0.3125)
    data = json.loads(json.dumps(original.to_json()))
    assert data["dim"] == 64
    back = Classifier.from_json(data)
    assert back.weights.dtype == np.float32
    assert np.array_equal(back.weights, original.weights)
    assert (back.name, back.topology, back.model_version) == ("cats", "photos", "clip-b32@2")
    assert (back.bias, back.labels, back.positives) == (-0.3125, 12, 5)
    assert back.trained_at == 1_700_000_000.5
    assert back.dim == 64


def test_weights_are_one_list_of_float32() -> None:
    classifier = make(weights=[1.0, 2.0])
    assert classifier.weights.dtype == np.float32
    assert classifier.weights.shape == (2,)
    assert classifier.dim == 2
    for odd in ([[1.0], [2.0]], "1.5", 1.5):
        with pytest.raises(ClassifierError, match="one list of numbers"):
            make(weights=odd)
    with pytest.raises(ClassifierError, match="finite float32s"):  # refused, not cast to inf
        Classifier(name="big", topology="t", model_version="v", weights=[1e39, 1.0], bias=0.0)  # type: ignore[arg-type]


def test_logits_are_vectors_times_weights_plus_bias() -> None:
    rng = np.random.default_rng(1)
    classifier = make(weights=rng.normal(size=8), bias=-0.75)
    vectors = rng.normal(size=(5, 8))
    logits = classifier.logits(vectors)
    assert logits.dtype == np.float32
    assert logits.shape == (5,)
    expected = vectors @ classifier.weights.astype(np.float64) - 0.75
    assert logits.tolist() == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-5)


def test_probabilities_are_the_sigmoid_of_the_logits() -> None:
    rng = np.random.default_rng(2)
    classifier = make(weights=rng.normal(size=4), bias=0.5)
    vectors = rng.normal(size=(6, 4))
    logits = classifier.logits(vectors).astype(np.float64)
    probabilities = classifier.probabilities(vectors)
    assert probabilities.dtype == np.float32
    assert probabilities.tolist() == pytest.approx((1 / (1 + np.exp(-logits))).tolist(), abs=1e-6)
    assert ((probabilities > 0.5) == (logits > 0)).all()


def test_probabilities_of_huge_logits_do_not_overflow() -> None:
    classifier = make(weights=[1000.0], bias=0.0)
    vectors = np.array([[1000.0], [-1000.0], [0.0], [1e30], [-1e30]])  # logits up to +-1e33
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        probabilities = classifier.probabilities(vectors)
        with pytest.raises(FloatingPointError):  # what the naive formula would do
            1 / (1 + np.exp(-classifier.logits(vectors).astype(np.float64)))
    assert probabilities.tolist() == [1.0, 0.0, 0.5, 1.0, 0.0]


@pytest.mark.parametrize("shape", [(3, 2), (3, 4), (3,), (1, 3, 1)])
def test_vectors_of_another_dimension_are_refused_by_name(shape: tuple[int, ...]) -> None:
    classifier = make(name="dogs-2")
    with pytest.raises(ClassifierError, match="classifier 'dogs-2' takes vectors of 3"):
        classifier.logits(np.zeros(shape))
    with pytest.raises(ClassifierError, match="'dogs-2'"):
        classifier.probabilities(np.zeros(shape))


@pytest.mark.parametrize("name", ["a", "cats", "red_cars-2", "x" + "9" * 63])
def test_plain_names_are_taken(name: str) -> None:
    assert make(name=name).name == name


@pytest.mark.parametrize(
    "name", ["", "Cat", "1abc", "-abc", "_abc", "a" * 65, "a b", "a.b", "caté", "cats\nrm"]
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ClassifierError, match="classifier name"):
        make(name=name)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ClassifierError, match="classifier name"):
        make(name="cats\n")


@pytest.mark.parametrize(
    ("weights", "bias"),
    [
        ([1.0, float("nan")], 0.0),
        ([float("inf"), 1.0], 0.0),
        ([1.0, -float("inf")], 0.0),
        ([1.0, 2.0], float("nan")),
        ([1.0, 2.0], float("inf")),
        ([1.0, 2.0], -float("inf")),
        ([], 0.0),
    ],
)
def test_non_finite_or_empty_weights_and_bias_are_refused(
    weights: list[float], bias: float
) -> None:
    with pytest.raises(ClassifierError, match=r"finite|one list"):
        make(weights=weights, bias=bias)


def test_classifier_error_is_a_streamer_error() -> None:
    assert issubclass(ClassifierError, StreamerError)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "cats",
        42,
        {},
        saved(name=None),
        saved(topology=None),
        saved(model_version=None),
        saved(weights=None),
        saved(bias=None),
        saved(weights=["a", "b", "c"]),
        saved(weights=[{"w": 1.0}, 2.0, 3.0]),
        saved(weights=[[1.0, 2.0], [3.0]]),
        saved(weights=[float("nan"), 1.0, 2.0]),
        saved(dim=4),
        saved(dim="three"),
        saved(bias="high"),
        saved(bias=[0.5]),
        saved(labels="many"),
        saved(positives=float("nan")),
        saved(trained_at="yesterday"),
        saved(name="Not A Name"),
    ],
)
def test_from_json_refuses_what_is_not_a_classifier(data: Any) -> None:
    with pytest.raises(ClassifierError):
        Classifier.from_json(data)


@pytest.mark.parametrize("key", ["labels", "positives", "dim"])
def test_from_json_refuses_infinite_counts(key: str) -> None:
    # json.loads reads Infinity: a saved file may hold it
    data = json.loads(json.dumps(saved(**{key: float("inf")})))
    with pytest.raises(ClassifierError):
        Classifier.from_json(data)


def test_from_json_fills_what_older_files_lack() -> None:
    data = saved(labels=None, positives=None, trained_at=None, dim=None)
    back = Classifier.from_json(data)
    assert (back.labels, back.positives, back.trained_at, back.dim) == (0, 0, 0.0, 3)
