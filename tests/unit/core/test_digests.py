"""The row digest: what makes a stored row current (its content, uri and metadata), the labels
that attached classifiers wrote beside the metadata left out."""

from __future__ import annotations

from streamer.core.digests import row_digest
from streamer.core.messages import LABELS_KEY

VERDICTS = {"cats": {"score": 0.93, "label": True}}


def test_the_labels_are_not_part_of_the_row_digest() -> None:
    upload = row_digest("hash", "file:///a.jpg", {"tenant": "acme"})
    stored = row_digest("hash", "file:///a.jpg", {"tenant": "acme", LABELS_KEY: VERDICTS})
    relabelled = row_digest(
        "hash",
        "file:///a.jpg",
        {LABELS_KEY: {"cats": {"score": 0.1, "label": False}}, "tenant": "acme"},
    )
    assert upload == stored == relabelled
    assert row_digest("hash", "", {LABELS_KEY: VERDICTS}) == row_digest("hash", "", {})


def test_everything_else_still_changes_the_digest() -> None:
    base = row_digest("hash", "file:///a.jpg", {"tenant": "acme", LABELS_KEY: VERDICTS})
    assert base != row_digest("hash2", "file:///a.jpg", {"tenant": "acme", LABELS_KEY: VERDICTS})
    assert base != row_digest("hash", "file:///b.jpg", {"tenant": "acme", LABELS_KEY: VERDICTS})
    assert base != row_digest("hash", "file:///a.jpg", {"tenant": "other", LABELS_KEY: VERDICTS})
    # a key that only resembles the reserved one is the upload's own
    assert row_digest("hash", "", {"classifier": 1}) != row_digest("hash", "", {})


def test_the_metadata_given_is_left_as_it_was() -> None:
    metadata = {"tenant": "acme", LABELS_KEY: VERDICTS}
    row_digest("hash", "", metadata)
    assert metadata == {"tenant": "acme", LABELS_KEY: VERDICTS}
