"""A colour histogram as the vector of an image: a handcrafted operator, no model at all.

:class:`HsvHistogram` counts an image's pixels in a joint grid of hue, saturation and value
bins (8 x 4 x 4 = 128 by default) and gives the square roots of the bin shares. The square
root (the Hellinger map) is what makes the vector searchable: after :class:`Normalize`, the
inner product of two such vectors is the Bhattacharyya coefficient of the two colour
distributions, 1 for the same colours and 0 for colours in common nowhere.

It is written as any user would write an operator of their own (see ``topologies/colour.py``):
a frozen dataclass declaring its ``name``, what it ``takes`` and ``gives``, the ``error`` its
failures become and the length of its vectors, and an :meth:`~HsvHistogram.apply` of one item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from streamer.core.errors import ConfigError, EmbedError
from streamer.runner.operator import VECTOR, CpuOperator, Vector

__all__ = ["HsvHistogram"]


@dataclass(frozen=True)
class HsvHistogram(CpuOperator[Image.Image, Vector]):
    """An image to the square roots of its pixels' shares in ``bins`` (hue, saturation,
    value) joint bins: a ``h * s * v``-d vector of unit L2 norm before any normalisation.

    Hue is a circle: the bins are shifted by half a bin so that red, at both ends of the
    range, falls in one bin rather than two. Give it a small image (``DecodeImage(min_side=...)``
    decodes JPEGs at reduced size): a histogram needs thousands of pixels, not millions."""

    name = "histogram"
    takes = Image.Image
    gives = VECTOR
    error = EmbedError

    bins: tuple[int, int, int] = (8, 4, 4)

    def __post_init__(self) -> None:
        if len(self.bins) != 3 or not all(1 <= b <= 256 for b in self.bins):
            raise ConfigError(f"{self.name}: bins must be three counts in 1..256, not {self.bins}")

    def apply(self, item: Image.Image) -> Vector:
        width, height = item.size
        if width * height == 0:
            raise EmbedError(f"a {width}x{height} image has no colours to count")
        rgb = np.asarray(item if item.mode == "RGB" else item.convert("RGB"))
        # "full": hue over 0..255, so adding to it in uint8 wraps round the hue circle
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] += 128 // self.bins[0]  # half a hue bin
        counts = cv2.calcHist([hsv], [0, 1, 2], None, list(self.bins), [0, 256] * 3)
        return np.sqrt(counts.reshape(-1) / (width * height)).astype(np.float32)

    def vector_dim(self, upstream: int | None) -> int:
        return math.prod(self.bins)
