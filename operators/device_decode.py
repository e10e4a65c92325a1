"""Decode and resize JPEGs where the model runs: nvJPEG in batches on a GPU, then the model's
own resize and center crop there.

On a GPU worker an image costs more CPU outside the model (decoding a 1920x1280 JPEG, then
resizing it) than GPU inside it, so the CPU pool, not the GPU, sets the pace.
:class:`DeviceImagePrepare` does the work of ``DecodeImage → TimmPreprocess`` as one model stage
on the model's device, a micro-batch at a time:

1. each item's header is read on the CPU (cheap: format, size, mode, EXIF orientation), and the
   pixel cap is checked there, before anything is decoded;
2. the JPEGs the device can take go to one batched ``torchvision.io.decode_jpeg`` call (nvJPEG
   on a GPU). It has no partial results, so when it fails the items are retried one by one: one
   bad file is isolated instead of sending its whole batch to the CPU;
3. each image is resized (shorter side, the transform's filter, antialiased) and center-cropped
   by torchvision's own functions, with the sizes of the model's transform, and rounded back to
   ``uint8``: the crop the fused CPU transform gives, already on the device.

A JPEG stored sideways or mirrored (EXIF orientation 2-8, as phones write them) is turned
upright on the device with flips and a transpose, exactly as Pillow's ``exif_transpose`` turns
it (torchvision applies the tag only when decoding on the CPU). What the device cannot take
runs today's CPU path for that item alone (the decoder, then
:class:`~operators.preprocess.CropResize`): other formats, CMYK JPEGs and JPEGs the decoder
refuses; a file that is truly corrupt gets its :class:`DecodeError` there. So every item gets
the same crop, or the same error, as on the CPU.

The planner puts this stage in place of the pair (:meth:`DecodeImage.on_device`) when the model
runs on a GPU (``STREAMER_DECODE_ON_DEVICE=auto``), or everywhere (``on``: the same code runs on
a CPU with torchvision's CPU decoder, which is how it is tested without a GPU).
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from operators.preprocess import CropResize, TimmPreprocess, fuse, timm_transform
from streamer.config.cpus import available_cores
from streamer.config.settings import FetchSettings
from streamer.core.errors import ConfigError, DecodeError, StageError
from streamer.runner.operator import BoundModel, ModelOperator

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = [
    "SAMPLE_PHOTO_SIZE",
    "DeviceImagePrepare",
    "DevicePreparer",
    "sample_jpeg",
    "upright",
]

log = logging.getLogger(__name__)

#: the size of the photo :meth:`DevicePreparer.sample_inputs` gives (a typical camera upload)
SAMPLE_PHOTO_SIZE = (1920, 1280)

_ORIENTATION = 0x0112  # the EXIF tag; 2..8 mean the pixels are stored flipped or rotated
#: per orientation, whether to swap rows and columns, then which axes of (C, H, W) to flip: what
#: Pillow's exif_transpose does (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 270,
#: 7 transverse, 8 rotate 90)
_UPRIGHT: dict[int, tuple[bool, tuple[int, ...]]] = {
    1: (False, ()),
    2: (False, (-1,)),
    3: (False, (-1, -2)),
    4: (False, (-2,)),
    5: (True, ()),
    6: (True, (-1,)),
    7: (True, (-1, -2)),
    8: (True, (-2,)),
}
#: JPEG colour modes the device decodes to RGB as Pillow does (CMYK/YCCK: Pillow's own way)
_DEVICE_MODES = ("RGB", "L")
#: decoded photos of one size resized in one call, at most (a 1920x1280 photo is ~30 MB in
#: float while it is resized: 32 of them ~1 GB of device memory at once)
RESIZE_CHUNK = 32


class ImageDecoding(Protocol):
    """What this stage needs of the CPU image decoder (:class:`operators.decode.ImageDecoder`):
    the header read with its guards, and the whole decode for what the device does not take."""

    max_pixels: int

    def open(self, data: bytes) -> Image.Image: ...

    def decode(self, data: bytes) -> Image.Image: ...


class DecodeStage(Protocol):
    """The declared decode stage this one stands for (:class:`operators.decode.DecodeImage`)."""

    def decoder(self, fetch: FetchSettings) -> ImageDecoding: ...


@functools.cache
def sample_jpeg() -> bytes:
    """A photo-like JPEG of :data:`SAMPLE_PHOTO_SIZE` (smooth shapes, texture and sensor noise;
    quality 90, about 600 KB), made once: decode time depends on size and entropy, so
    calibrating on it measures what real uploads cost."""
    rng = np.random.default_rng(0)
    width, height = SAMPLE_PHOTO_SIZE

    def field(rows: int, cols: int) -> np.ndarray:
        cells = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        smooth = Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC)
        return np.asarray(smooth, dtype=np.float32)

    noise = rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
    pixels = 0.7 * field(8, 12) + 0.3 * field(80, 120) + noise
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class DevicePreparer:
    """The loaded stage: JPEG bytes in, the model's ``uint8`` crops (3, height, width) out, on
    ``device``; each failed item its :class:`DecodeError`. Call it on a list of bytes to time
    the device path alone."""

    def __init__(
        self, decoder: ImageDecoding, transform: Any, *, device: str, precision: str
    ) -> None:
        fused = fuse(transform)
        if fused is None:
            raise ConfigError(
                "decode on the device: the model's transform is not a resize and center crop "
                f"this stage reproduces: {transform}"
            )
        resize, crop = transform.transforms[:2]
        self.device = device
        #: the precision of the model this stage feeds (decoding itself is exact)
        self.precision = precision
        self.decoder = decoder
        self.cpu_crop: CropResize = fused[0]
        self._device = torch.device(device)
        self._size = [resize.size] if isinstance(resize.size, int) else list(resize.size)
        self._interpolation: InterpolationMode = resize.interpolation
        self._crop = [int(v) for v in crop.size]
        self._pool: ThreadPoolExecutor | None = None
        self._stream: torch.cuda.Stream | None = None

    @torch.no_grad()
    def __call__(self, batch: Sequence[bytes]) -> list[torch.Tensor | StageError]:
        if self._device.type != "cuda":
            return self._prepare(batch)
        # a stream of its own, so decoding overlaps the model's kernels on the default stream;
        # the crops are complete before the model's thread reads them
        if self._stream is None:
            self._stream = torch.cuda.Stream(self._device)
        with torch.cuda.stream(self._stream):
            results = self._prepare(batch)
        self._stream.synchronize()
        return results

    def _prepare(self, batch: Sequence[bytes]) -> list[torch.Tensor | StageError]:
        results: list[torch.Tensor | StageError | None] = [None] * len(batch)
        on_device: list[tuple[int, int]] = []  # (item, EXIF orientation)
        for i, data in enumerate(batch):
            try:
                if (orientation := self._device_takes(data)) is not None:
                    on_device.append((i, orientation))
            except DecodeError as exc:  # empty, not an image, over the pixel cap
                results[i] = exc
        images = self._decode([batch[i] for i, _ in on_device])
        # photos of one size are resized together: a few kernels a chunk, not a few an image
        # (the per-call cost, not the arithmetic, is what a GPU's prepare thread spends)
        by_shape: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
        for (i, orientation), image in zip(on_device, images, strict=True):
            if image is not None:
                turned = upright(image, orientation)
                by_shape.setdefault(tuple(turned.shape), []).append((i, turned))
        for same in by_shape.values():
            for start in range(0, len(same), RESIZE_CHUNK):
                chunk = same[start : start + RESIZE_CHUNK]
                crops = self._resize_crop(torch.stack([image for _, image in chunk]))
                for (i, _), crop in zip(chunk, crops, strict=True):
                    results[i] = crop
        # the CPU path for the rest, in threads: a GPU worker fed PNGs must not decode them one
        # at a time on its model thread
        left = [i for i, result in enumerate(results) if result is None]
        on_cpu = self._cpu_pool().map(self._on_cpu, [batch[i] for i in left])
        for i, result in zip(left, on_cpu, strict=True):
            results[i] = result
        return [r for r in results if r is not None]

    def _cpu_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(available_cores(), "decode-fallback")
        return self._pool

    def sample_inputs(self, n: int) -> list[bytes]:
        """``n`` photo-like JPEGs of a camera's size (:func:`sample_jpeg`)."""
        return [sample_jpeg()] * n

    def _device_takes(self, data: bytes) -> int | None:
        """The EXIF orientation of ``data`` when the device decodes it as Pillow would (an RGB
        or grey JPEG with a known orientation), else ``None``. Reads the header only; what is
        not an image, or is over the pixel cap, raises :class:`DecodeError` here, before any
        pixel is decoded."""
        try:
            with self.decoder.open(data) as image:
                if image.format != "JPEG" or image.mode not in _DEVICE_MODES:
                    return None
                orientation = image.getexif().get(_ORIENTATION, 1)
                return orientation if orientation in _UPRIGHT else None
        except DecodeError:
            raise
        except Exception:  # an odd header (bad EXIF, say): the CPU path says what is wrong
            return None

    def _decode(self, jpegs: Sequence[bytes]) -> list[torch.Tensor | None]:
        """Decoded RGB images on the device, one per input; ``None`` where the decoder refused
        the file even alone (the CPU path then decodes it, or names what is wrong)."""
        if not jpegs:
            return []
        # decode_jpeg takes CPU uint8 tensors; bytes are read-only, so each is copied once
        data = [torch.frombuffer(bytearray(jpeg), dtype=torch.uint8) for jpeg in jpegs]
        if self._device.type == "cuda":
            # torchvision 0.29 allocates the outputs on this thread's stream but has nvJPEG
            # write them from a stream of its own that does not wait for ours: memory freed
            # here while kernels queued on it still read it could be overwritten. Let those
            # kernels finish first (the stream is idle after the model's last copy to the host).
            torch.cuda.current_stream(self._device).synchronize()
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self._device))
        except Exception as exc:  # no partial results: find the file(s) it refused
            log.debug("batched JPEG decode of %d failed (%s); one by one", len(data), exc)
        return [self._decode_one(one) for one in data] if len(data) > 1 else [None]

    def _decode_one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return decode_jpeg([data], mode=ImageReadMode.RGB, device=self._device)[0]
        except Exception:
            return None

    def _resize_crop(self, image: torch.Tensor) -> torch.Tensor:
        """The model transform's resize and center crop of ``image`` (C, H, W) or of a stack of
        images of one size (N, C, H, W), by torchvision's own functions. In
        float on every device (a GPU resizes uint8 so anyway; the CPU's native uint8 kernel
        would round differently from what runs on the GPU)."""
        resized = F.resize(
            image.float(), self._size, interpolation=self._interpolation, antialias=True
        )
        crop = F.center_crop(resized, self._crop)
        return crop.clamp_(0, 255).round_().to(torch.uint8)

    def _on_cpu(self, data: bytes) -> torch.Tensor | StageError:
        """Today's CPU path for one item: decode (EXIF rotation, any format), then the fused
        crop; the crop goes to the device beside the others."""
        try:
            return self.cpu_crop(self.decoder.decode(data)).to(self._device)
        except DecodeError as exc:
            return exc
        except Exception as exc:  # an unforeseen failure is this item's, never the batch's
            return DecodeError(f"decode: {type(exc).__name__}: {exc}")


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``image`` (C, H, W) turned as Pillow's ``exif_transpose`` turns a photo whose EXIF
    orientation is ``orientation`` (1-8)."""
    swap, flips = _UPRIGHT[orientation]
    if swap:
        image = image.transpose(-1, -2)
    return image.flip(flips) if flips else image


@dataclass(frozen=True)
class DeviceImagePrepare(ModelOperator[bytes, torch.Tensor]):
    """``decode`` then ``preprocess``, fused on the model's device: JPEG bytes to the model's
    ``uint8`` crops, a micro-batch at a time (see the module doc). The planner makes it from
    the declared pair; it takes the embed stage's batch policy, device and precision."""

    name = "decode"
    takes = bytes
    gives = torch.Tensor
    error = DecodeError
    #: prepares the embed stage's inputs: its batch size, and the device's prepare thread
    prepares: ClassVar[bool] = True

    decode: DecodeStage
    preprocess: TimmPreprocess
    #: the pixel cap of the process that binds it (default: the declared decode stage's)
    max_pixels: int | None = None

    @staticmethod
    def fits(preprocess: TimmPreprocess) -> bool:
        """Whether the device path reproduces ``preprocess``: the fused transform (shorter side
        resize, center crop) of a model whose transform has that shape."""
        return preprocess.fused and fuse(timm_transform(preprocess.model)) is not None

    def load(self, device: str, precision: str) -> DevicePreparer:
        """The stage on ``device``, with the declared pixel cap or the default one (:meth:`bind`
        gives it the process's)."""
        decoder = self.decode.decoder(FetchSettings())
        if self.max_pixels is not None:
            decoder.max_pixels = self.max_pixels
        return DevicePreparer(
            decoder, timm_transform(self.preprocess.model), device=device, precision=precision
        )

    def bind(self, context: Context) -> BoundModel[bytes, torch.Tensor]:
        # load() sees no context: the process's pixel cap goes in through the declaration
        capped = replace(self, max_pixels=self.decode.decoder(context.fetch).max_pixels)
        return BoundModel(self, ModelOperator.bind(capped, context).model)
