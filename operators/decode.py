"""Decode fetched bytes into what a model takes: RGB images, clean text.

JPEGs are decoded at reduced size (libjpeg's DCT scaling) when the model input is much smaller
than the photo, which is several times faster and, after the model's own resize, gives the
same embedding. The pixel count is checked from the header, before any pixel is allocated.
"""

from __future__ import annotations

import math
import warnings
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from streamer.core.errors import DecodeError

__all__ = ["IMAGE_FORMATS", "ImageDecoder", "TextDecoder"]

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
