"""A model's resize-and-center-crop, computed only where the crop needs it.

timm's evaluation transform resizes the whole image (shorter side to ``size``), then keeps a
center crop: on a photo decoded at 480x320 that resamples 384x256 pixels to keep 224x224 of
them, and it was a third of the CPU an image costs outside the model. :class:`CropResize`
resamples only the rows and columns the crop keeps, with Pillow's own filter and the same
source coordinates, in about a quarter of the time. The pixels are the full transform's: equal
for landscape photos, and within 2 grey levels elsewhere (Pillow may run the two passes of a
full resize in the other order, which rounds differently; tested).

Its output is a ``uint8`` CHW tensor: the model normalises a whole batch at once (on the GPU
when there is one, after a copy four times smaller than float pixels). :class:`TimmPreprocess`
is the stage: an image in, the model's input out, by the model's own data configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from operators.timm_model import TimmModel
from streamer.core.errors import DecodeError
from streamer.runner.operator import BoundCpu, CpuOperator

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = ["CropResize", "Normalizer", "TimmPreprocess", "fuse", "timm_transform"]

# Pillow's filter support (in source pixels at scale 1) for the filters a transform may name
_SUPPORT = {
    Image.Resampling.BOX: 0.5,
    Image.Resampling.BILINEAR: 1.0,
    Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0,
    Image.Resampling.LANCZOS: 3.0,
}
_PIL_FILTER = {
    InterpolationMode.BOX: Image.Resampling.BOX,
    InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
    InterpolationMode.HAMMING: Image.Resampling.HAMMING,
    InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
    InterpolationMode.LANCZOS: Image.Resampling.LANCZOS,
}


@dataclass(frozen=True, slots=True)
class CropResize:
    """``Resize(size)`` (shorter side) then ``CenterCrop((height, width))``, fused: a horizontal
    pass over the rows the crop reads, then a vertical pass."""

    size: int
    height: int
    width: int
    resample: Image.Resampling

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """The crop as a ``uint8`` tensor of shape (3, height, width)."""
        w, h = image.size
        # the resized size, as torchvision computes it
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.size * long / short)
        rw, rh = (self.size, new_long) if w <= h else (new_long, self.size)
        if rw < self.width or rh < self.height:  # torchvision would pad: not fused
            raise ValueError(f"{w}x{h} resized to {rw}x{rh} is smaller than the crop")
        left = round((rw - self.width) / 2.0)
        top = round((rh - self.height) / 2.0)
        sx, sy = w / rw, h / rh
        x0, x1 = left * sx, (left + self.width) * sx
        y0, y1 = top * sy, (top + self.height) * sy
        first, last = self._rows(y0, y1, h)
        band = image.crop((0, first, w, last))
        rows = last - first
        if (x0, x1, self.width) != (0, w, w):
            band = band.resize((self.width, rows), self.resample, box=(x0, 0, x1, rows))
        if (y0, y1, self.height) != (first, last, rows):
            box = (0, y0 - first, self.width, y1 - first)
            band = band.resize((self.width, self.height), self.resample, box=box)
        if band.mode != "RGB":
            band = band.convert("RGB")
        return torch.from_numpy(np.array(band)).permute(2, 0, 1)

    def _rows(self, y0: float, y1: float, height: int) -> tuple[int, int]:
        """The source rows the vertical pass reads (Pillow's ``precompute_coeffs`` bounds)."""
        scale = (y1 - y0) / self.height
        support = _SUPPORT[self.resample] * max(scale, 1.0)
        top_center = y0 + 0.5 * scale
        bottom_center = y0 + (self.height - 0.5) * scale
        first = max(0, int(top_center - support + 0.5))
        last = min(height, int(bottom_center + support + 0.5))
        return first, max(last, first + 1)


class Normalizer:
    """``uint8`` pixels of a batch to the model's normalised floats, in one pass."""

    def __init__(self, mean: Any, std: Any) -> None:
        std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale - shift
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {
            torch.device("cpu"): (1.0 / (255.0 * std_t), mean_t / std_t)
        }

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dtype != torch.uint8:
            return batch  # already normalised (a transform that was not fused)
        if batch.device not in self._on:
            scale, shift = self._on[torch.device("cpu")]
            self._on[batch.device] = (scale.to(batch.device), shift.to(batch.device))
        scale, shift = self._on[batch.device]
        return batch.to(torch.float32).mul_(scale).sub_(shift)


def fuse(transform: Any) -> tuple[CropResize, Normalizer] | None:
    """The fused equivalent of a ``Resize(int) -> CenterCrop -> ToTensor -> Normalize`` pipeline,
    or ``None`` for any other transform (which then runs as it is)."""
    steps = list(getattr(transform, "transforms", []))
    if len(steps) != 4:
        return None
    resize, crop, to_tensor, normalize = steps
    if not (
        isinstance(resize, transforms.Resize)
        and isinstance(crop, transforms.CenterCrop)
        and isinstance(to_tensor, transforms.ToTensor)
        and isinstance(normalize, transforms.Normalize)
    ):
        return None
    size = resize.size if isinstance(resize.size, int) else None
    if isinstance(resize.size, (list, tuple)) and len(resize.size) == 1:
        size = int(resize.size[0])
    resample = _PIL_FILTER.get(resize.interpolation)
    if size is None or resize.max_size is not None or resample is None:
        return None
    height, width = (int(v) for v in crop.size)
    if height > size or width > size:
        return None
    return CropResize(size, height, width, resample), Normalizer(normalize.mean, normalize.std)


def timm_transform(model: TimmModel) -> Any:
    """timm's evaluation transform for ``model`` (resize, center crop, to tensor, normalise)."""
    from timm.data import create_transform

    return create_transform(**model.data_config(), is_training=False)


class _Transform:
    """A transform that is not fused: its output is the normalised float tensor."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> torch.Tensor:
        tensor = self.transform(image)
        assert isinstance(tensor, torch.Tensor)
        return tensor


@dataclass(frozen=True)
class TimmPreprocess(CpuOperator[Image.Image, torch.Tensor]):
    """An image to the input of ``model``: timm's evaluation transform, fused where it has the
    usual shape (resize, center crop, normalise: only the kept pixels are resampled, the crop
    stays ``uint8`` and the embed stage normalises the batch on its device). ``fused=False``
    runs timm's transform as it comes."""

    name = "preprocess"
    takes = Image.Image
    gives = torch.Tensor
    error = DecodeError

    model: TimmModel
    fused: bool = True

    def bind(self, context: Context) -> BoundCpu[Image.Image, torch.Tensor]:
        transform = timm_transform(self.model)
        fused = fuse(transform) if self.fused else None
        return BoundCpu(self, fused[0] if fused is not None else _Transform(transform))

    def baseline(self) -> TimmPreprocess:
        """timm's transform as it comes (whole-image resize, float pixels)."""
        return TimmPreprocess(self.model, fused=False)
