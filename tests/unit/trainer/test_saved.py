"""Which saved classifiers are attached to the stream: attach, detach, delete (which detaches),
and what a worker reads through ``attached``. Runs against the Redis at 127.0.0.1:6379 under a
key prefix of its own (skipped without one)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from streamer.trainer.classifier import Classifier, ClassifierError
from streamer.trainer.saved import SavedClassifiers


def make(name: str, weights: tuple[float, ...] = (1.0, -2.0, 0.5)) -> Classifier:
    return Classifier(
        name=name,
        topology="photos",
        model_version="photos@1",
        weights=np.asarray(weights, dtype=np.float32),
        bias=0.25,
    )


@pytest.fixture
def saved() -> Iterator[SavedClassifiers]:
    client = redis.Redis.from_url(os.environ.get("STREAMER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis: {exc}")
    prefix = f"unit-saved-{uuid.uuid4().hex[:8]}"
    try:
        yield SavedClassifiers(client, prefix)
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_attach_and_detach(saved: SavedClassifiers) -> None:
    for name in ("dogs", "cats", "birds"):
        saved.save(make(name))
    assert saved.attached_names() == [] and saved.attached() == []
    assert saved.attach("dogs").name == "dogs"
    saved.attach("cats")
    saved.attach("cats")  # twice is once
    assert saved.attached_names() == ["cats", "dogs"]
    assert [c.name for c in saved.attached()] == ["cats", "dogs"]
    assert saved.detach("dogs") is True
    assert saved.detach("dogs") is False
    assert saved.detach("birds") is False  # saved, never attached
    assert saved.attached_names() == ["cats"]
    assert saved.names() == ["birds", "cats", "dogs"]  # detaching deletes nothing


def test_attaching_an_unknown_name_raises_and_attaches_nothing(saved: SavedClassifiers) -> None:
    saved.save(make("cats"))
    with pytest.raises(ClassifierError, match=r"no classifier named 'dogs' \(saved: \['cats'\]\)"):
        saved.attach("dogs")
    assert saved.attached_names() == []


def test_deleting_a_classifier_detaches_it(saved: SavedClassifiers) -> None:
    saved.save(make("cats"))
    saved.attach("cats")
    assert saved.delete("cats") is True
    assert saved.attached_names() == []
    saved.save(make("cats"))  # saved again under the name: not attached by that
    assert saved.attached() == []


def test_a_name_whose_classifier_went_is_left_out(saved: SavedClassifiers) -> None:
    for name in ("cats", "dogs"):
        saved.save(make(name))
        saved.attach(name)
    saved.client.hdel(saved.key, "cats")  # removed behind the API's back
    assert saved.attached_names() == ["cats", "dogs"]
    assert [c.name for c in saved.attached()] == ["dogs"]


def test_new_weights_for_an_attached_classifier_are_what_attached_reads(
    saved: SavedClassifiers,
) -> None:
    saved.save(make("cats"))
    saved.attach("cats")
    saved.save(make("cats", (0.0, 3.0, -1.0)), replace=True)
    [cats] = saved.attached()
    np.testing.assert_array_equal(cats.weights, np.asarray([0.0, 3.0, -1.0], dtype=np.float32))
    assert (cats.topology, cats.model_version, cats.bias) == ("photos", "photos@1", 0.25)
