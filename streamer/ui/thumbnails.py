"""Thumbnails of stored photos: fetched through the same guards as uploads (media roots, byte
and pixel caps, hostile URIs refused), decoded at reduced size, shrunk to a square box on the
server and kept in a small LRU cache, so a page of results costs a fetch per photo once."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

from operators.fetch import fetcher_for
from operators.image_decoder import ImageDecoder
from streamer.config.settings import FetchSettings

__all__ = ["Thumbnails"]


class Thumbnails:
    def __init__(self, fetch: FetchSettings, *, side: int = 192, cache: int = 512) -> None:
        self.fetcher = fetcher_for(fetch)
        self.decoder = ImageDecoder(max_pixels=fetch.max_image_pixels, min_side=side)
        self.side = side
        self.capacity = cache
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, uri: str) -> bytes:
        """A JPEG of at most ``side`` x ``side`` of the photo at ``uri``; raises the fetch or
        decode error (a :class:`~streamer.core.errors.StageError`) naming the cause."""
        with self._lock:
            if uri in self._cache:
                self._cache.move_to_end(uri)
                return self._cache[uri]
        image = self.decoder.decode(self.fetcher.fetch(uri))
        image.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        data = out.getvalue()
        with self._lock:
            self._cache[uri] = data
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return data
