"""Bytes to an upright RGB image with Pillow: the format allowlist and the pixel cap checked
from the header before any pixel is allocated, large JPEGs decoded at reduced size (libjpeg's
DCT scaling), never below the side the model's transform needs. The decode stages
(:class:`~operators.decode.DecodeImage`) and the other decoders
(:class:`~operators.cv_decode.CvImageDecoder`) build on it."""

from __future__ import annotations

import math
import warnings
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from streamer.core.errors import DecodeError

__all__ = ["IMAGE_FORMATS", "ImageDecoder"]

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageDecoder:
    """Bytes to an RGB :class:`PIL.Image.Image`, with a format allowlist and a pixel cap.

    ``min_side`` is the shortest side the model's transform needs; JPEG decoding may scale the
    photo down, never below it. ``None`` decodes at full size.
    """

    def __init__(self, *, max_pixels: int, min_side: int | None = None) -> None:
        self.max_pixels = max_pixels
        self.min_side = min_side

    def open(self, data: bytes) -> Image.Image:
        """The image read as far as its header: format, size, mode and EXIF are known, no
        pixel is decoded. Empty bytes, what is not an image of :data:`IMAGE_FORMATS` and more
        pixels than the cap are a :class:`DecodeError`."""
        if not data:
            raise DecodeError("empty image file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(BytesIO(data), formats=IMAGE_FORMATS)
        except UnidentifiedImageError as exc:
            raise DecodeError(f"not an image of {', '.join(IMAGE_FORMATS)}") from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DecodeError(f"corrupt or truncated image: {exc}") from exc
        except Image.DecompressionBombWarning as exc:
            raise DecodeError(f"image too large: {exc}") from exc
        width, height = image.size
        if width * height > self.max_pixels:
            raise DecodeError(
                f"{width}x{height} image has {width * height} pixels, over {self.max_pixels}"
            )
        return image

    def decode(self, data: bytes) -> Image.Image:
        return self.decode_opened(self.open(data))

    def decode_opened(self, image: Image.Image) -> Image.Image:
        """What :meth:`open` read, decoded: at reduced size for a large JPEG, upright, RGB."""
        try:
            width, height = image.size
            if image.format == "JPEG" and self.min_side:
                scale = self.min_side / min(width, height)
                if scale < 0.5:
                    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            upright = ImageOps.exif_transpose(image) or image
            rgb = upright.convert("RGB")
            rgb.load()
            return rgb
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DecodeError(f"corrupt or truncated image: {exc}") from exc
