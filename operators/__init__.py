"""Atomic, typed units of work that topologies compose: fetch, decode, embed, normalize."""

from operators.base import check_batch, map_items
from operators.decode import IMAGE_FORMATS, ImageDecoder, TextDecoder
from operators.fetch import Fetcher, FileFetcher, path_to_uri
from operators.normalize import l2_normalize

__all__ = [
    "IMAGE_FORMATS",
    "Fetcher",
    "FileFetcher",
    "ImageDecoder",
    "TextDecoder",
    "check_batch",
    "l2_normalize",
    "map_items",
    "path_to_uri",
]
