"""A training session over an exact in-memory index: rounds of results never shown twice, the
top of the ranking first and the decision boundary once trained, labels taken and taken back,
reset, and a classifier that learns two clusters apart from an oracle's labels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from streamer.config.settings import TrainerSettings
from streamer.trainer.classifier import ClassifierError
from streamer.trainer.session import Candidate, MemoryIndex, TrainingSession

DIM = 16
Vectors = npt.NDArray[np.float32]


def centres() -> tuple[Vectors, Vectors]:
    """The positive and negative centres: unit vectors at a cosine of 0.5, so that the query
    (the positive centre) scores every negative above 0 and a bias must be learnt."""
    positive = np.zeros(DIM, dtype=np.float32)
    positive[0] = 1.0
    negative = np.zeros(DIM, dtype=np.float32)
    negative[0], negative[1] = 0.5, np.sqrt(0.75)
    return positive, negative


def cluster(centre: Vectors, n: int, rng: np.random.Generator) -> Vectors:
    """``n`` unit vectors scattered around ``centre``."""
    points = centre + rng.normal(0.0, 0.12, (n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def clusters(n: int = 100, seed: int = 0) -> MemoryIndex:
    """``n`` positives ``p0..`` and ``n`` negatives ``n0..``."""
    rng = np.random.default_rng(seed)
    positive, negative = centres()
    ids = [f"p{i}" for i in range(n)] + [f"n{i}" for i in range(n)]
    return MemoryIndex(ids, np.vstack([cluster(positive, n, rng), cluster(negative, n, rng)]))


def session(**settings: float | int | bool) -> TrainingSession:
    return TrainingSession.from_query(
        centres()[0] * 3.0,  # not unit length: the session normalises it
        topology="photos",
        model_version="clip-b32@2",
        settings=TrainerSettings(**settings),
    )


def oracle(candidate: Candidate) -> float:
    return 1.0 if candidate.id.startswith("p") else -1.0


def test_the_first_round_is_the_top_of_the_query_ranking() -> None:
    index = clusters()
    trainer = session(round_size=8)
    shown = trainer.next(index)
    assert len(shown) == 8
    assert {c.why for c in shown} == {"top"}
    logits = [c.logit for c in shown]
    assert logits == sorted(logits, reverse=True)
    # exactly the 8 best scores over the whole index, the logit being the score (bias 0)
    scores = index.vectors[:, 0].astype(np.float64)  # the query is the positive centre, e0
    best = sorted(scores.tolist(), reverse=True)[:8]
    assert logits == pytest.approx(best, abs=1e-6)
    assert {c.id for c in shown} == {index.ids[i] for i in np.argsort(-scores)[:8]}
    for c in shown:
        assert np.array_equal(c.vector, index.vectors[index.ids.index(c.id)])
    assert trainer.seen == {c.id for c in shown}
    assert trainer.rounds == 1


def test_a_round_size_can_be_asked_for() -> None:
    assert len(session(round_size=8).next(clusters(), k=3)) == 3


def test_no_result_is_shown_twice() -> None:
    index = clusters(n=20)
    trainer = session(round_size=7, steps=20, learning_rate=1.0)
    shown: list[str] = []
    for _ in range(5):
        round_ = trainer.next(index)
        shown += [c.id for c in round_]
        for c in round_[:3]:
            trainer.label(c.id, c.vector, oracle(c))
        trainer.train()
    assert len(shown) == 35
    assert len(set(shown)) == 35
    assert trainer.seen == set(shown)
    assert trainer.rounds == 5


def test_the_index_running_out_ends_the_rounds() -> None:
    index = clusters(n=5)
    trainer = session(round_size=4)
    sizes = [len(trainer.next(index)) for _ in range(4)]
    assert sizes == [4, 4, 2, 0]


@pytest.mark.parametrize(("k", "explore"), [(10, 0.5), (10, 0.3), (7, 0.5), (5, 1.0), (5, 0.0)])
def test_a_trained_round_takes_its_share_from_the_boundary(k: int, explore: float) -> None:
    index = clusters()
    trainer = session(round_size=k, explore=explore, steps=50, learning_rate=1.0)
    for c in trainer.next(index):
        trainer.label(c.id, c.vector, oracle(c))
    assert {c.why for c in trainer.next(index)} == {"top"}  # not trained yet: no boundary
    trainer.train()
    assert trainer.trained
    shown = trainer.next(index)
    boundary = [c for c in shown if c.why == "boundary"]
    assert len(shown) == k
    assert len(boundary) == round(k * explore)
    logits = [c.logit for c in shown]
    assert logits == sorted(logits, reverse=True)
    if boundary:
        # the boundary ones are the unseen results of smallest |logit|
        before = trainer.seen - {c.id for c in shown}
        unseen = [i for i, asset_id in enumerate(index.ids) if asset_id not in before]
        all_logits = index.vectors[unseen].astype(np.float64) @ trainer.weights + trainer.bias
        nearest = np.sort(np.abs(all_logits))[: len(boundary)]
        assert sorted(abs(c.logit) for c in boundary) == pytest.approx(nearest, abs=1e-4)


def test_an_oracle_teaches_it_the_clusters() -> None:
    index = clusters(n=150, seed=0)
    trainer = session(round_size=10)  # the defaults: 500 steps a round at a rate of 10
    held_out = np.random.default_rng(99)
    positive, negative = centres()
    test_vectors = np.vstack([cluster(positive, 200, held_out), cluster(negative, 200, held_out)])
    truth = np.r_[np.ones(200, dtype=bool), np.zeros(200, dtype=bool)]
    before = trainer.classifier("start").logits(test_vectors) > 0
    assert (before == truth).mean() <= 0.6  # the query alone calls nearly everything positive
    for _ in range(4):
        for c in trainer.next(index):
            trainer.label(c.id, c.vector, oracle(c))
        trainer.train()
    assert trainer.positives > 0
    assert len(trainer.labels) > trainer.positives
    predicted = trainer.classifier("learnt").logits(test_vectors) > 0
    assert (predicted == truth).mean() >= 0.9


def test_labels_are_kept_replaced_and_taken_back() -> None:
    trainer = session()
    vector = np.ones(DIM, dtype=np.float32)
    trainer.label("a", vector, 1.0)
    trainer.label("b", vector * 2, -0.5)
    assert trainer.positives == 1
    assert set(trainer.labels) == {"a", "b"}
    assert trainer.labels["b"][1] == -0.5
    assert np.array_equal(trainer.labels["b"][0], vector * 2)
    assert {"a", "b"} <= trainer.seen
    trainer.label("b", vector, 0.5)  # changed mind
    assert trainer.positives == 2
    trainer.label("a", vector, 0)  # taken back
    assert set(trainer.labels) == {"b"}
    assert trainer.positives == 1
    trainer.label("never-labelled", vector, 0.0)
    assert set(trainer.labels) == {"b"}


@pytest.mark.parametrize("value", [1.5, -1.01, 2, float("nan"), float("inf")])
def test_labels_off_the_scale_are_refused(value: float) -> None:
    trainer = session()
    with pytest.raises(ValueError):
        trainer.label("a", np.ones(DIM), value)
    assert trainer.labels == {}


def test_training_with_labels_moves_the_classifier() -> None:
    trainer = session(steps=10, learning_rate=1.0)
    start = trainer.weights.copy()
    trainer.label("x", centres()[1], -1.0)
    trainer.train()
    assert trainer.trained
    assert not np.allclose(trainer.weights, start)
    assert float(centres()[1] @ trainer.weights + trainer.bias) < float(centres()[1] @ start)


def test_reset_starts_again_from_the_query() -> None:
    index = clusters(n=30)
    trainer = session(round_size=5, steps=20, learning_rate=1.0)
    first = [c.id for c in trainer.next(index)]
    for c in trainer.next(index):
        trainer.label(c.id, c.vector, oracle(c))
    trainer.train()
    assert trainer.bias != 0.0
    assert not np.allclose(trainer.weights, centres()[0])
    trainer.reset()
    assert trainer.seen == set()
    assert trainer.labels == {}
    assert (trainer.trained, trainer.rounds, trainer.bias) == (False, 0, 0.0)
    assert trainer.weights.tolist() == pytest.approx(centres()[0].tolist(), abs=1e-7)
    again = trainer.next(index)
    assert [c.id for c in again] == first
    assert {c.why for c in again} == {"top"}


def test_a_session_from_a_saved_classifier_goes_on_from_it() -> None:
    index = clusters(n=30)
    trained = session(round_size=5, steps=20, learning_rate=1.0)
    for c in trained.next(index):
        trained.label(c.id, c.vector, oracle(c))
    trained.train()
    saved = trained.classifier("cats")
    resumed = TrainingSession.from_classifier(saved, TrainerSettings(round_size=4))
    assert resumed.weights.tolist() == pytest.approx(saved.weights.tolist())
    assert resumed.bias == saved.bias
    assert (resumed.topology, resumed.model_version) == ("photos", "clip-b32@2")
    assert resumed.trained
    assert resumed.labels == {}
    assert sum(c.why == "boundary" for c in resumed.next(index)) == 2  # trained: explores
    with pytest.raises(ClassifierError):
        resumed.reset()


def test_the_classifier_carries_where_it_came_from() -> None:
    trainer = session(steps=5, learning_rate=1.0)
    trainer.label("a", centres()[0], 1.0)
    trainer.label("b", centres()[1], -1.0)
    trainer.label("c", centres()[1], -0.5)
    trainer.train()
    classifier = trainer.classifier("cats")
    assert classifier.name == "cats"
    assert (classifier.topology, classifier.model_version) == ("photos", "clip-b32@2")
    assert (classifier.labels, classifier.positives) == (3, 1)
    assert classifier.weights.dtype == np.float32
    assert classifier.weights.tolist() == pytest.approx(trainer.weights.tolist(), rel=1e-6)
    assert classifier.bias == trainer.bias
    with pytest.raises(ClassifierError):
        trainer.classifier("Not a name")


def test_the_query_is_the_weights_at_unit_length() -> None:
    trainer = session()
    assert trainer.query.dtype == np.float32
    assert float(np.linalg.norm(trainer.query)) == pytest.approx(1.0, abs=1e-6)
    trainer.weights = np.arange(DIM, dtype=np.float64) * 7.0
    assert float(np.linalg.norm(trainer.query)) == pytest.approx(1.0, abs=1e-6)
    expected = trainer.weights / np.linalg.norm(trainer.weights)
    assert trainer.query.tolist() == pytest.approx(expected.tolist(), abs=1e-6)


@pytest.mark.parametrize(
    "query", [np.zeros(DIM), np.full(DIM, np.nan), np.r_[np.inf, np.zeros(DIM - 1)]]
)
def test_a_query_without_a_direction_is_refused(query: npt.NDArray[np.float64]) -> None:
    with pytest.raises(ClassifierError):
        TrainingSession.from_query(query)


def line_index() -> MemoryIndex:
    """Five vectors whose score under the weights (1, 0) is their first coordinate."""
    return MemoryIndex(
        ["a", "b", "c", "d", "e"],
        [[0.9, 0.1], [0.5, 0.2], [0.1, 0.3], [-0.3, 0.4], [-0.8, 0.5]],
    )


def test_memory_index_top_ranks_by_score_without_the_excluded() -> None:
    index = line_index()
    weights = np.array([1.0, 0.0], dtype=np.float32)
    assert [i for i, _ in index.top(weights, 3, set())] == ["a", "b", "c"]
    assert [i for i, _ in index.top(weights, 3, {"a", "c", "unknown"})] == ["b", "d", "e"]
    assert [i for i, _ in index.top(weights, 10, {"a", "b"})] == ["c", "d", "e"]
    assert [i for i, _ in index.top(-weights, 2, set())] == ["e", "d"]
    found = index.top(weights, 1, {"a"})
    assert found[0][0] == "b"
    assert found[0][1].tolist() == pytest.approx([0.5, 0.2])


def test_memory_index_near_ranks_by_distance_to_the_threshold() -> None:
    index = line_index()
    weights = np.array([1.0, 0.0], dtype=np.float32)
    assert [i for i, _ in index.near(weights, 0.0, 2, set())] == ["c", "d"]
    assert [i for i, _ in index.near(weights, 0.6, 3, set())] == ["b", "a", "c"]
    assert [i for i, _ in index.near(weights, 0.6, 3, {"b"})] == ["a", "c", "d"]
    assert [i for i, _ in index.near(weights, -1.0, 10, {"a", "b", "c", "d", "e"})] == []


def test_memory_index_refuses_ids_and_vectors_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="3 ids for 2 vectors"):
        MemoryIndex(["a", "b", "c"], np.zeros((2, 4)))
    with pytest.raises(ValueError):
        MemoryIndex(["a"], np.zeros((2, 4)))
