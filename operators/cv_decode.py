"""JPEG decoding through OpenCV, for ``DecodeImage(backend="opencv")``.

OpenCV's ``imdecode`` wraps libjpeg-turbo as Pillow does. It decodes straight to RGB at a
reduced size (``IMREAD_REDUCED_COLOR_2/4/8``: the DCT scaling of Pillow's ``draft``), in one
call that releases the GIL. :class:`CvImageDecoder` picks the factor Pillow's ``draft`` would
pick, so the shorter side never goes below ``min_side``, and turns the result upright by the
EXIF orientation Pillow reads. The pixels are Pillow's, byte for byte (tested).

Everything else stays Pillow's: the header is read first, with the format allowlist and the
pixel cap, before any pixel is allocated (:meth:`ImageDecoder.open`); other formats and the
JPEG colour modes OpenCV would convert its own way (CMYK, YCCK) are decoded by Pillow, and so
is any JPEG OpenCV refuses (corrupt, truncated): Pillow then decodes it, or raises the
:class:`~streamer.core.errors.DecodeError` that says what is wrong.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from operators.image_decoder import ImageDecoder

__all__ = ["CvImageDecoder", "jpeg_reduction"]

_ORIENTATION = 0x0112  # the EXIF tag
#: per EXIF orientation, the transpose that makes the pixels upright (Pillow's exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: the JPEG modes OpenCV decodes to RGB as Pillow does (grey is repeated in the three channels)
_MODES = ("RGB", "L")


def _flags(reduced: int) -> int:
    # IMREAD_REDUCED_COLOR_n carries the BGR bit, which excludes RGB output: keep the scale bits
    # only; orientation is applied from Pillow's reading of the EXIF, as the Pillow path does
    rgb = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    return (reduced & ~cv2.IMREAD_COLOR_BGR) | rgb


#: imdecode flags per reduction factor
_FLAGS = {
    1: _flags(cv2.IMREAD_COLOR_BGR),
    2: _flags(cv2.IMREAD_REDUCED_COLOR_2),
    4: _flags(cv2.IMREAD_REDUCED_COLOR_4),
    8: _flags(cv2.IMREAD_REDUCED_COLOR_8),
}


def jpeg_reduction(size: tuple[int, int], min_side: int | None) -> int:
    """The factor (1, 2, 4 or 8) a JPEG of ``size`` is decoded smaller by, so that its shorter
    side stays at least ``min_side``: what :meth:`ImageDecoder.decode` asks of Pillow's
    ``draft``, and the factor ``draft`` picks for it."""
    width, height = size
    if not min_side or min(width, height) < 1:
        return 1
    scale = min_side / min(width, height)
    if scale >= 0.5:
        return 1
    fits = min(width // math.ceil(width * scale), height // math.ceil(height * scale))
    return next((factor for factor in (8, 4, 2) if fits >= factor), 1)


class CvImageDecoder(ImageDecoder):
    """:class:`ImageDecoder` with JPEGs decoded by OpenCV: the same checks, the same pixels."""

    def decode(self, data: bytes) -> Image.Image:
        image = self.open(data)
        if image.format != "JPEG" or image.mode not in _MODES:
            return self.decode_opened(image)
        factor = jpeg_reduction(image.size, self.min_side)
        try:
            orientation = image.getexif().get(_ORIENTATION, 1)
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), _FLAGS[factor])
        except Exception:  # an odd EXIF, an OpenCV error: Pillow's path says what is wrong
            return self.decode_opened(image)
        width, height = image.size
        expected = (math.ceil(height / factor), math.ceil(width / factor), 3)
        if pixels is None or pixels.shape != expected:  # refused, or read another frame
            return self.decode_opened(image)
        rgb = Image.fromarray(pixels)
        method = _UPRIGHT.get(orientation)
        return rgb.transpose(method) if method is not None else rgb
