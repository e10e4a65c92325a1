"""The rows of an asset's parts: their ids, and the Milvus filter that finds them (less those
just written) by the asset they are part of, every value escaped."""

from __future__ import annotations

import pytest

from streamer.core.errors import SinkError
from streamer.storage.store import (
    PART_OF,
    escape_literal,
    not_id_filter,
    part_id,
    parts_filter,
)


def test_a_parts_id_is_the_assets_with_its_key() -> None:
    assert part_id("a", "s0") == "a#s0"
    assert part_id("video/7", "s12") == "video/7#s12"


def test_the_parts_of_assets_are_found_by_the_asset_they_are_part_of() -> None:
    assert PART_OF == "segment_of"
    assert parts_filter(["a"]) == 'metadata["segment_of"] == "a"'
    assert (
        parts_filter(["a", "b"]) == 'metadata["segment_of"] == "a" or metadata["segment_of"] == "b"'
    )


def test_the_parts_just_written_are_kept() -> None:
    keep = {"a": ["a#s0", "a#s1"]}
    assert parts_filter(["a", "b"], keep) == (
        '(metadata["segment_of"] == "a" and id not in ["a#s0", "a#s1"])'
        ' or metadata["segment_of"] == "b"'
    )
    # an asset with nothing to keep (no parts now) loses every part it had
    assert parts_filter(["a"], {"a": []}) == 'metadata["segment_of"] == "a"'
    assert parts_filter(["b"], keep) == 'metadata["segment_of"] == "b"'


def test_quotes_and_backslashes_are_escaped() -> None:
    odd = 'say "hi"\\now'
    escaped = '"say \\"hi\\"\\\\now"'
    assert escape_literal(odd) == escaped
    assert parts_filter([odd]) == f'metadata["segment_of"] == {escaped}'
    kept = part_id(odd, "s0")
    assert parts_filter([odd], {odd: [kept]}) == (
        f'(metadata["segment_of"] == {escaped} and {not_id_filter([kept])})'
    )
    assert not_id_filter([kept]) == 'id not in ["say \\"hi\\"\\\\now#s0"]'


@pytest.mark.parametrize(
    ("ids", "keep"),
    [
        (["a", "b\nc"], None),
        (["a\x00"], None),
        (["a"], {"a": ["a#s0\r"]}),
    ],
)
def test_control_characters_are_refused(ids: list[str], keep: dict[str, list[str]] | None) -> None:
    with pytest.raises(SinkError, match="control characters"):
        parts_filter(ids, keep)
