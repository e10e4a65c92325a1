"""Decode fetched bytes into what a model takes: RGB images, clean text.

JPEGs are decoded at reduced size (libjpeg's DCT scaling) when the model input is much smaller
than the photo, which is several times faster and, after the model's own resize, gives the
same embedding. The pixel count is checked from the header, before any pixel is allocated.
JPEGs may be decoded by OpenCV instead (:mod:`operators.cv_decode`, ``DecodeImage(backend=
"opencv")``): the same pixels, after the same checks. The stages :class:`DecodeImage` and
:class:`DecodeText` take their caps from the settings.
When the model runs on a GPU, :class:`DecodeImage` and the model's transform after it run
there instead (:meth:`DecodeImage.on_device`, :mod:`operators.device_decode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from PIL import Image

from operators.image_decoder import IMAGE_FORMATS, ImageDecoder
from streamer.core.errors import ConfigError, DecodeError
from streamer.runner.operator import BoundCpu, CpuOperator, Operator

if TYPE_CHECKING:
    from streamer.config.settings import FetchSettings
    from streamer.runner.context import Context

__all__ = [
    "IMAGE_FORMATS",
    "OPENCV_FROM_CORES",
    "DecodeBackend",
    "DecodeImage",
    "DecodeText",
    "ImageDecoder",
    "SizeHint",
    "TextDecoder",
    "auto_jpeg_backend",
]


#: who decodes JPEGs: Pillow, OpenCV, or ``auto`` (:func:`auto_jpeg_backend`); other formats
#: are always Pillow's
DecodeBackend = Literal["auto", "pil", "opencv"]
#: from how many cores ``auto`` decodes JPEGs with OpenCV (:func:`auto_jpeg_backend`)
OPENCV_FROM_CORES = 8


def auto_jpeg_backend(cores: int | None = None) -> Literal["pil", "opencv"]:
    """What ``auto`` means on a machine of ``cores`` (default: this one's). Measured with
    ``streamer bench decode`` (1920x1280 photos, decode and the model's fused crop): both are
    libjpeg-turbo at the same DCT scale, give the same pixels and release the GIL while they
    decode. On a 2-core CPU OpenCV ran at 0.94-1.02x Pillow's rate on one thread, 0.99-1.09x on
    two, for the same CPU time a photo: not faster, so Pillow. On a 16-core Xeon (the lent GPU
    machine) 1.18x on one thread and 1.35x on sixteen (1,227 against 909 photos/s): OpenCV."""
    from streamer.config.cpus import available_cores

    return "opencv" if (cores or available_cores()) >= OPENCV_FROM_CORES else "pil"


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
    ``STREAMER_FETCH_MAX_IMAGE_PIXELS``. ``backend`` decodes JPEGs with Pillow, OpenCV
    (:class:`~operators.cv_decode.CvImageDecoder`, same pixels) or, ``auto``, the one measured
    faster on a machine like this one (:func:`auto_jpeg_backend`)."""

    name = "decode"
    takes = bytes
    gives = Image.Image
    error = DecodeError

    min_side: int | SizeHint | None = None
    max_pixels: int | None = None
    backend: DecodeBackend = "auto"

    def __post_init__(self) -> None:
        if self.backend not in get_args(DecodeBackend):
            raise ConfigError(
                f"DecodeImage backend must be one of {', '.join(get_args(DecodeBackend))}, "
                f"got {self.backend!r}"
            )

    def decoder(self, fetch: FetchSettings) -> ImageDecoder:
        """The decoder this stage runs, with the pixel cap of ``fetch`` unless it declares
        one."""
        side = (
            self.min_side if isinstance(self.min_side, int | None) else self.min_side.resize_side()
        )
        cap = self.max_pixels or fetch.max_image_pixels
        backend = auto_jpeg_backend() if self.backend == "auto" else self.backend
        if backend == "opencv":
            from operators.cv_decode import CvImageDecoder

            return CvImageDecoder(max_pixels=cap, min_side=side)
        return ImageDecoder(max_pixels=cap, min_side=side)

    def bind(self, context: Context) -> BoundCpu[bytes, Image.Image]:
        return BoundCpu(self, self.decoder(context.fetch).decode)

    def on_device(self, following: Operator[Any, Any], device: str) -> Operator[Any, Any] | None:
        """Followed by the model's fused transform (``TimmPreprocess``), decoding, resize and
        crop run on the model's device, a batch at a time
        (:class:`~operators.device_decode.DeviceImagePrepare`)."""
        from operators.device_decode import DeviceImagePrepare
        from operators.preprocess import TimmPreprocess

        if isinstance(following, TimmPreprocess) and DeviceImagePrepare.fits(following):
            return DeviceImagePrepare(self, following)
        return None

    def baseline(self) -> DecodeImage:
        """Full-size decoding by Pillow, as a per-item runtime would do it."""
        return DecodeImage(min_side=None, max_pixels=self.max_pixels, backend="pil")


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
