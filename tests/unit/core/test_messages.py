import json

import pytest
from pydantic import ValidationError

from streamer.core.errors import InvalidMessage
from streamer.core.messages import (
    LABELS_KEY,
    DeadLetter,
    LabelEvent,
    UploadMessage,
    Verdict,
    infer_media_type,
    parse_upload,
)


def encode(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_parses_the_contract_example() -> None:
    upload = parse_upload(
        encode(
            {
                "id": "asset-123",
                "uri": "file:///data/cat.jpg",
                "media_type": "image",
                "text": None,
                "metadata": {"tenant": "acme"},
                "op": "upsert",
            }
        )
    )
    assert upload.id == "asset-123"
    assert upload.media_type == "image"
    assert upload.metadata == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("uri", "text", "expected"),
    [
        ("file:///a/b.JPG", None, "image"),
        ("https://x.test/p.webp?sig=1", None, "image"),
        ("s3://bucket/notes.txt", None, "text"),
        (None, "hello", "text"),
        ("file:///a/b.bin", None, None),
    ],
)
def test_media_type_inference(uri: str | None, text: str | None, expected: str | None) -> None:
    assert infer_media_type(uri, text) == expected


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (b"", "empty"),
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (encode({"uri": "file:///a.jpg"}), "id"),
        (encode({"id": ""}), "id"),
        (encode({"id": "a"}), "uri or text"),
        (encode({"id": "a", "uri": "file:///x.bin"}), "media_type"),
        (encode({"id": "a", "uri": "gopher://x/a.jpg"}), "scheme 'gopher'"),
        (encode({"id": "a", "text": "t", "op": "merge"}), "op"),
        (encode({"id": "a", "text": "t", "metadata": [1]}), "metadata"),
        (encode({"id": " a", "text": "t"}), "surrounding spaces"),
        (encode({"id": "a\nb", "text": "t"}), "control characters"),
    ],
)
def test_invalid_messages_name_the_problem(value: bytes, names: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_upload(value)
    assert info.value.stage == "validate"
    assert names in str(info.value)


def test_invalid_message_names_the_asset_when_it_can() -> None:
    with pytest.raises(InvalidMessage, match="asset 'a7'"):
        parse_upload(encode({"id": "a7", "uri": "file:///x.unknown"}))


def test_delete_needs_only_an_id() -> None:
    upload = parse_upload(encode({"id": "gone", "op": "delete"}))
    assert upload.op == "delete"
    assert upload.media_type is None


def test_round_trip_bytes() -> None:
    upload = UploadMessage(id="x", text="hello", metadata={"k": 1})
    assert parse_upload(upload.to_bytes()) == upload


def test_dead_letter_headers_follow_the_contract() -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_upload(b"nope")
    letter = DeadLetter.from_error(
        info.value, value=b"nope", key=b"k", topic="media.uploads", partition=2, offset=41
    )
    headers = dict(letter.headers())
    assert headers["x-error-stage"] == b"validate"
    assert headers["x-error-class"] == b"InvalidMessage"
    assert b"not UTF-8 JSON" in headers["x-error-message"]
    assert headers["x-source-topic"] == b"media.uploads"
    assert headers["x-source-partition"] == b"2"
    assert headers["x-source-offset"] == b"41"
    assert headers["x-attempts"] == b"1"


def test_an_upsert_may_not_bring_labels_of_its_own() -> None:
    value = encode({"id": "a7", "text": "t", "metadata": {"tenant": "x", LABELS_KEY: {}}})
    with pytest.raises(InvalidMessage) as info:
        parse_upload(value)
    assert info.value.stage == "validate"
    assert str(info.value) == (
        "[validate] asset 'a7': "
        "metadata: 'classifiers' is reserved for the labels of attached classifiers"
    )


def test_a_delete_is_not_checked_for_labels() -> None:
    upload = parse_upload(encode({"id": "gone", "op": "delete", "metadata": {LABELS_KEY: 1}}))
    assert (upload.op, upload.metadata) == ("delete", {LABELS_KEY: 1})


def label_event(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": "v#s0",
        "topology": "clips",
        "model_version": "clips@1",
        "media_type": "video",
        "uri": "file:///v.mp4",
        "part_of": "v",
        "labels": {"cats": {"score": 0.75, "label": True}},
        "labelled_ms": 1_700_000_000_000.0,
    }
    return {**event, **changes}


def test_a_label_event_round_trips_through_its_bytes() -> None:
    event = LabelEvent.model_validate(label_event())
    assert event.labels == {"cats": Verdict(score=0.75, label=True)}
    assert LabelEvent.model_validate_json(event.to_bytes()) == event
    plain = LabelEvent.model_validate(label_event(uri=None, part_of=None))
    assert json.loads(plain.to_bytes()).keys() == {
        "id", "topology", "model_version", "media_type", "labels", "labelled_ms"
    }  # fmt: skip


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan")])
def test_a_verdicts_score_is_a_probability(score: float) -> None:
    with pytest.raises(ValidationError, match="score"):
        LabelEvent.model_validate(label_event(labels={"cats": {"score": score, "label": True}}))
    with pytest.raises(ValidationError, match="score"):
        Verdict(score=score, label=False)


@pytest.mark.parametrize("score", [0.0, 1.0])
def test_a_score_may_be_certain(score: float) -> None:
    assert Verdict(score=score, label=score >= 0.5).score == score
