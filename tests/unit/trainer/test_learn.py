"""Fitting the query trainer's linear classifier: labels from -1 to +1 as targets from 0 to 1,
full-batch gradient descent on the (balanced) binary cross-entropy of the logits."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from streamer.trainer.learn import fit, targets_of

Array = npt.NDArray[np.float64]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def bce(weights: Array, bias: float, vectors: Array, targets: Array) -> float:
    """The mean binary cross-entropy of ``vectors @ weights + bias`` against ``targets``."""
    logits = vectors @ weights + bias
    # log(1 + e^z) - t z, written without overflow
    return float(np.mean(np.logaddexp(0.0, logits) - targets * logits))


def separable(seed: int = 0, n: int = 20) -> tuple[Array, Array]:
    """``n`` positives around (1, 1) and ``n`` negatives around (-1, -1), far apart."""
    rng = np.random.default_rng(seed)
    positives = rng.normal((1.0, 1.0), 0.2, (n, 2))
    negatives = rng.normal((-1.0, -1.0), 0.2, (n, 2))
    return np.vstack([positives, negatives]), np.r_[np.ones(n), np.zeros(n)]


def test_targets_of_maps_the_label_scale_onto_zero_to_one() -> None:
    targets = targets_of([-1, 0, 1, 0.5, -0.5])
    assert targets.dtype == np.float64
    assert targets.tolist() == [0.0, 0.5, 1.0, 0.75, 0.25]
    assert targets_of([]).size == 0


@pytest.mark.parametrize(
    "labels", [[1.5], [-1.01], [0.0, 2.0], [float("nan")], [float("inf")], [1.0, -float("inf")]]
)
def test_targets_of_refuses_labels_off_the_scale(labels: list[float]) -> None:
    with pytest.raises(ValueError, match="labels go from -1 to"):
        targets_of(labels)


def test_fit_lowers_the_loss_and_separates_a_separable_set() -> None:
    vectors, targets = separable()
    start = np.array([0.5, -1.0])  # a start that gets most of them wrong
    assert (vectors @ start > 0).tolist() != (targets == 1).tolist()
    before = bce(start, 0.0, vectors, targets)
    weights, bias = fit(start, 0.0, vectors, targets, learning_rate=1.0, steps=200)
    after = bce(weights, bias, vectors, targets)
    assert after < before / 10
    logits = vectors @ weights + bias
    assert (logits[targets == 1] > 0).all()
    assert (logits[targets == 0] < 0).all()
    assert start.tolist() == [0.5, -1.0]  # the weights given are not changed in place


def test_more_steps_lower_the_loss_further() -> None:
    vectors, targets = separable(seed=1)
    losses = [
        bce(*fit(np.zeros(2), 0.0, vectors, targets, learning_rate=0.5, steps=s), vectors, targets)
        for s in (1, 10, 100)
    ]
    assert losses[0] > losses[1] > losses[2]


def test_one_step_matches_the_gradient_by_hand() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    targets = np.array([1.0, 0.0])
    w0, b0, rate = np.array([0.5, -0.25]), 0.1, 0.5
    # errors sigmoid(z) - t at z = 0.5 + 0.1 and z = -0.25 + 0.1; one of each class: weights 1
    e1, e2 = sigmoid(0.6) - 1.0, sigmoid(-0.15) - 0.0
    expected_w = [0.5 - rate * e1 / 2, -0.25 - rate * e2 / 2]
    expected_b = 0.1 - rate * (e1 + e2) / 2
    for balanced in (True, False):
        weights, bias = fit(
            w0, b0, vectors, targets, learning_rate=rate, steps=1, balanced=balanced
        )
        assert weights == pytest.approx(expected_w, abs=1e-12)
        assert bias == pytest.approx(expected_b, abs=1e-12)


def test_one_balanced_step_weighs_each_class_by_half_the_labels_over_its_count() -> None:
    # two positives and one negative: positives weigh 3 / (2 * 2), the negative 3 / (2 * 1)
    vectors = np.array([[1.0], [2.0], [-1.0]])
    targets = np.array([1.0, 1.0, 0.0])
    errors = [
        0.75 * (sigmoid(0.0) - 1.0),
        0.75 * (sigmoid(0.0) - 1.0),
        1.5 * (sigmoid(0.0) - 0.0),
    ]
    expected_w = -1.0 * (1.0 * errors[0] + 2.0 * errors[1] - 1.0 * errors[2]) / 3
    expected_b = -1.0 * sum(errors) / 3
    weights, bias = fit([0.0], 0.0, vectors, targets, learning_rate=1.0, steps=1)
    assert weights.tolist() == pytest.approx([expected_w], abs=1e-12)
    assert bias == pytest.approx(expected_b, abs=1e-12)
    unweighted, plain_bias = fit(
        [0.0], 0.0, vectors, targets, learning_rate=1.0, steps=1, balanced=False
    )
    assert plain_bias == pytest.approx(-(-0.5 - 0.5 + 0.5) / 3, abs=1e-12)
    assert unweighted[0] != pytest.approx(weights[0])


def test_balanced_pushes_a_lone_negative_further_down() -> None:
    rng = np.random.default_rng(3)
    positives = np.column_stack([rng.uniform(0.5, 1.5, 9), rng.normal(0, 0.3, 9)])
    negative = np.array([[-1.0, 0.1]])
    vectors = np.vstack([positives, negative])
    targets = np.r_[np.ones(9), 0.0]
    logit = {}
    for balanced in (True, False):
        weights, bias = fit(
            np.zeros(2), 0.0, vectors, targets, learning_rate=0.1, steps=50, balanced=balanced
        )
        logit[balanced] = float(negative[0] @ weights + bias)
    assert logit[True] < logit[False] - 0.5
    assert logit[True] < 0


def test_balanced_changes_nothing_with_one_class_only() -> None:
    vectors = np.array([[1.0, 0.0], [0.5, 0.5]])
    targets = np.ones(2)
    balanced = fit(np.zeros(2), 0.0, vectors, targets, learning_rate=1.0, steps=3)
    plain = fit(np.zeros(2), 0.0, vectors, targets, learning_rate=1.0, steps=3, balanced=False)
    assert balanced[0].tolist() == pytest.approx(plain[0].tolist())
    assert balanced[1] == pytest.approx(plain[1])
    assert balanced[1] > 0  # learnt to call (these) positive


@pytest.mark.parametrize(
    ("weights", "vectors", "targets"),
    [
        (np.zeros(2), np.zeros((3, 2)), np.zeros(2)),  # more vectors than targets
        (np.zeros(3), np.zeros((2, 2)), np.zeros(2)),  # weights of another dimension
        (np.zeros(2), np.zeros(2), np.zeros(1)),  # one vector, not a matrix
        (np.zeros(2), np.zeros((1, 2, 1)), np.zeros(1)),  # three dimensions
    ],
)
def test_fit_refuses_mismatched_shapes(weights: Array, vectors: Array, targets: Array) -> None:
    with pytest.raises(ValueError):
        fit(weights, 0.0, vectors, targets, learning_rate=1.0, steps=1)


def test_fit_without_targets_returns_what_it_was_given() -> None:
    weights, bias = fit([0.25, -0.5], 0.75, np.empty((0, 2)), [], learning_rate=1.0, steps=10)
    assert weights.dtype == np.float64
    assert weights.tolist() == [0.25, -0.5]
    assert bias == 0.75
