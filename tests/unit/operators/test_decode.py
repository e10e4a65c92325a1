import io
import struct
import zlib

import pytest
from PIL import Image

from operators.decode import ImageDecoder, TextDecoder
from streamer.core.errors import DecodeError


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; the pixels are never there."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


def test_decodes_rgb() -> None:
    image = ImageDecoder(max_pixels=10**7).decode(jpeg(64, 48))
    assert image.mode == "RGB"
    assert image.size == (64, 48)


def test_grayscale_becomes_rgb() -> None:
    buffer = io.BytesIO()
    Image.new("L", (20, 20), 128).save(buffer, "PNG")
    assert ImageDecoder(max_pixels=10**7).decode(buffer.getvalue()).mode == "RGB"


def test_large_jpeg_is_decoded_at_reduced_size_but_never_below_min_side() -> None:
    image = ImageDecoder(max_pixels=10**8, min_side=256).decode(jpeg(1920, 1280))
    assert min(image.size) >= 256
    assert image.size[0] < 1920


def test_pixel_cap_is_checked_before_decoding() -> None:
    with pytest.raises(DecodeError, match="pixels"):
        ImageDecoder(max_pixels=10**8).decode(png_header_only(20_000, 20_000))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an image"),
        (b"GIF89a" + b"\x00" * 3, "corrupt|not an image"),
    ],
)
def test_bad_images(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        ImageDecoder(max_pixels=10**7).decode(data)


def test_truncated_jpeg() -> None:
    data = jpeg(300, 200)
    with pytest.raises(DecodeError, match="corrupt or truncated"):
        ImageDecoder(max_pixels=10**7).decode(data[: len(data) // 2])


def test_text_decoding() -> None:
    decoder = TextDecoder(max_bytes=100)
    assert decoder.decode("  héllo \n".encode()) == "héllo"
    for data, reason in [
        (b"   ", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"a\x00b", "NUL"),
        (b"x" * 101, "over 100"),
    ]:
        with pytest.raises(DecodeError, match=reason):
            decoder.decode(data)
