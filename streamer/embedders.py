"""Bind a topology's declared model to its decoder: bytes in, prepared inputs, vectors out.

``prepare`` (decode and preprocess) is CPU work that runs in the decode pool; ``embed`` is the
model call that runs on the topology's device, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from operators.decode import ImageDecoder, TextDecoder
from operators.device import resolve_device
from streamer.errors import EmbedError
from streamer.settings import FetchSettings
from topologies.base import TextModelSpec, TimmModelSpec, Topology

__all__ = ["Embedder", "ImageEmbedder", "TextEmbedder", "load_embedder"]


class Embedder(Protocol):
    topology: Topology
    dim: int

    @property
    def calls(self) -> int:
        """Items the model has embedded since load."""
        ...

    def prepare(self, data: bytes) -> Any: ...

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]: ...


class ImageEmbedder:
    def __init__(self, topology: Topology, fetch: FetchSettings, device: str) -> None:
        from operators.image_embed import TimmImageEmbedder, load_timm_model

        spec = topology.model
        assert isinstance(spec, TimmModelSpec)
        self.topology = topology
        model = load_timm_model(spec.arch, spec.weights_path(), by_order=spec.map_keys_by_order)
        self.model = TimmImageEmbedder(model, layer=spec.layer, device=device)
        self.decoder = ImageDecoder(
            max_pixels=fetch.max_image_pixels, min_side=self.model.resize_side
        )
        self.dim = self.model.dim

    @property
    def calls(self) -> int:
        return self.model.calls

    def prepare(self, data: bytes) -> Any:
        return self.model.preprocess(self.decoder.decode(data))

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]:
        return _checked(self.topology, self.model.embed(prepared), len(prepared), self.dim)


class TextEmbedder:
    def __init__(self, topology: Topology, fetch: FetchSettings, device: str) -> None:
        from operators.text_embed import TransformersTextEmbedder

        spec = topology.model
        assert isinstance(spec, TextModelSpec)
        self.topology = topology
        self.model = TransformersTextEmbedder(
            spec.model_path(), device=device, max_length=spec.max_length
        )
        self.decoder = TextDecoder(max_bytes=fetch.max_text_bytes)
        self.dim = self.model.dim

    @property
    def calls(self) -> int:
        return self.model.calls

    def prepare(self, data: bytes) -> Any:
        return self.decoder.decode(data)

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]:
        return _checked(self.topology, self.model.embed(prepared), len(prepared), self.dim)


def _checked(
    topology: Topology, vectors: npt.NDArray[np.float32], n: int, dim: int
) -> npt.NDArray[np.float32]:
    if vectors.shape != (n, dim):
        raise EmbedError(
            f"topology {topology.name!r} returned {vectors.shape}, expected {(n, dim)}"
        )
    if not np.isfinite(vectors).all():
        raise EmbedError(f"topology {topology.name!r} produced non-finite values")
    return vectors


def load_embedder(topology: Topology, fetch: FetchSettings, device: str = "auto") -> Embedder:
    """Load the topology's model on ``device`` (``auto``: the topology's own choice)."""
    chosen = resolve_device(topology.device if device == "auto" else device)
    if topology.media_type == "image":
        return ImageEmbedder(topology, fetch, chosen)
    return TextEmbedder(topology, fetch, chosen)
