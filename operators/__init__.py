"""Atomic, typed operators that topologies compose: fetch, decode, preprocess, embed, normalize.

Each is a declaration (see :mod:`streamer.runner.operator` for the contract); a topology
imports the ones it uses. The model stages load their weights only when they are bound.
The operators that need torch live in their own modules (``operators.preprocess``,
``operators.image_embed``, ``operators.device_decode``...), so importing this package stays
light; ``operators.device_decode.DeviceImagePrepare`` is never declared in a topology: the
planner puts it in place of decode and preprocess when the model runs on a GPU.
"""

from operators.decode import IMAGE_FORMATS, DecodeImage, DecodeText, ImageDecoder, TextDecoder
from operators.fetch import Fetch, Fetcher, FileFetcher, path_to_uri
from operators.normalize import Normalize, l2_normalize

__all__ = [
    "IMAGE_FORMATS",
    "DecodeImage",
    "DecodeText",
    "Fetch",
    "Fetcher",
    "FileFetcher",
    "ImageDecoder",
    "Normalize",
    "TextDecoder",
    "l2_normalize",
    "path_to_uri",
]
