"""Decode fetched bytes into what a model takes: RGB images, clean text.

JPEGs are decoded at reduced size (libjpeg's DCT scaling) when the model input is much smaller
than the photo, which is several times faster and, after the model's own resize, gives the
same embedding. The pixel count is checked from the header, before any pixel is allocated.
The stages :class:`DecodeImage` and :class:`DecodeText` take their caps from the settings.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from streamer.core.errors import DecodeError
from streamer.runner.operator import BoundCpu, CpuOperator

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = ["IMAGE_FORMATS", "DecodeImage", "DecodeText", "ImageDecoder", "SizeHint", "TextDecoder"]

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageDecoder:
    """Bytes to an RGB :class:`PIL.Image.Image`, with a format allowlist and a pixel cap.

    ``min_side`` is the shortest side the model's transform needs; JPEG decoding may scale the
    photo down, never below it. ``None`` decodes at full size.
    """

    def __init__(self, *, max_pixels: int, min_side: int | None = None) -> None:
        self.max_pixels = max_pixels
        self.min_side = min_side

    def decode(self, data: bytes) -> Image.Image:
        if not data:
            raise DecodeError("empty image file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(BytesIO(data), formats=IMAGE_FORMATS)
            width, height = image.size
            if width * height > self.max_pixels:
                raise DecodeError(
                    f"{width}x{height} image has {width * height} pixels, over {self.max_pixels}"
                )
            if image.format == "JPEG" and self.min_side:
                scale = self.min_side / min(width, height)
                if scale < 0.5:
                    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            upright = ImageOps.exif_transpose(image) or image
            rgb = upright.convert("RGB")
            rgb.load()
            return rgb
        except DecodeError:
            raise
        except UnidentifiedImageError as exc:
            raise DecodeError(f"not an image of {', '.join(IMAGE_FORMATS)}") from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DecodeError(f"corrupt or truncated image: {exc}") from exc
        except Image.DecompressionBombWarning as exc:
            raise DecodeError(f"image too large: {exc}") from exc


class TextDecoder:
    """Bytes to stripped, non-empty UTF-8 text of at most ``max_bytes``."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def decode(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise DecodeError(f"text is {len(data)} bytes, over {self.max_bytes}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"text is not UTF-8: {exc}") from exc
        text = text.strip()
        if not text:
            raise DecodeError("text is empty")
        if "\x00" in text:
            raise DecodeError("text contains NUL bytes (binary data?)")
        return text


class SizeHint(Protocol):
    """Something that knows the shortest image side its transform needs (a model spec)."""

    def resize_side(self) -> int: ...


@dataclass(frozen=True)
class DecodeImage(CpuOperator[bytes, Image.Image]):
    """Bytes to an upright RGB image. ``min_side``: JPEGs may be decoded at reduced size, never
    below this side (an int, or the model whose transform follows, e.g. ``DecodeImage(
    min_side=EFFNET)``); ``None`` decodes at full size. ``max_pixels`` defaults to
    ``STREAMER_FETCH_MAX_IMAGE_PIXELS``."""

    name = "decode"
    takes = bytes
    gives = Image.Image
    error = DecodeError

    min_side: int | SizeHint | None = None
    max_pixels: int | None = None

    def bind(self, context: Context) -> BoundCpu[bytes, Image.Image]:
        side = (
            self.min_side if isinstance(self.min_side, int | None) else self.min_side.resize_side()
        )
        decoder = ImageDecoder(
            max_pixels=self.max_pixels or context.fetch.max_image_pixels, min_side=side
        )
        return BoundCpu(self, decoder.decode)

    def baseline(self) -> DecodeImage:
        """Full-size decoding, as a per-item runtime would do it."""
        return DecodeImage(min_side=None, max_pixels=self.max_pixels)


@dataclass(frozen=True)
class DecodeText(CpuOperator[bytes, str]):
    """Bytes to stripped, non-empty UTF-8 text of at most ``max_bytes`` (default
    ``STREAMER_FETCH_MAX_TEXT_BYTES``)."""

    name = "decode"
    takes = bytes
    gives = str
    error = DecodeError

    max_bytes: int | None = None

    def bind(self, context: Context) -> BoundCpu[bytes, str]:
        decoder = TextDecoder(max_bytes=self.max_bytes or context.fetch.max_text_bytes)
        return BoundCpu(self, decoder.decode)
