"""Fuzzing: message parsing and image decoding only ever succeed or raise their typed error.

Brief here; longer on demand:
``STREAMER_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/unit/core/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from operators.decode import ImageDecoder, TextDecoder
from streamer.core.errors import DecodeError, InvalidMessage
from streamer.core.messages import UploadMessage, parse_upload

EXAMPLES = int(os.environ.get("STREAMER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON | st.text(max_size=30),
        "uri": JSON | st.sampled_from(["file:///a.jpg", "http://x/a.png", "s3://b/k.txt", "x:"]),
        "text": JSON,
        "media_type": JSON | st.sampled_from(["image", "text", "video"]),
        "metadata": JSON,
        "op": JSON | st.sampled_from(["upsert", "delete"]),
    },
)


def _sample(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 30, 200)).save(buffer, fmt)
    return buffer.getvalue()


SAMPLES = [_sample("JPEG"), _sample("PNG"), _sample("GIF"), _sample("BMP"), _sample("WEBP")]


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_typed(value: bytes) -> None:
    with contextlib.suppress(InvalidMessage):
        assert isinstance(parse_upload(value), UploadMessage)


@FUZZ
@given(FIELDS)
def test_any_json_object_parses_or_fails_typed(fields: dict[str, object]) -> None:
    try:
        upload = parse_upload(json.dumps(fields).encode())
    except InvalidMessage:
        return
    assert upload.id and (upload.op == "delete" or upload.media_type in ("image", "text"))


@FUZZ
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                          max_size=8), st.integers(0, 10_000))  # fmt: skip
def test_corrupted_images_decode_or_fail_typed(
    sample: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(sample)
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: max(1, len(data) - cut % len(data))]
    try:
        image = ImageDecoder(max_pixels=10**7, min_side=16).decode(bytes(data))
    except DecodeError:
        return
    assert image.mode == "RGB"


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_decode_as_image_or_fail_typed(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        ImageDecoder(max_pixels=10**7).decode(data)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_decode_as_text_or_fail_typed(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        assert TextDecoder(max_bytes=300).decode(data)
