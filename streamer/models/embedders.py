"""Bind a topology's declared model to its decoder: bytes in, prepared inputs, vectors out.

``prepare`` (decode and preprocess) is CPU work that runs in the decode pool; ``embed`` is the
model call that runs on the topology's device, a batch at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from operators.decode import ImageDecoder, TextDecoder
from operators.device import resolve_device
from streamer.core.errors import EmbedError
from streamer.config.settings import FetchSettings
from topologies.base import TextModelSpec, TimmModelSpec, Topology

__all__ = ["Embedder", "EmbedderPool", "ImageEmbedder", "TextEmbedder", "load_embedder"]


class Embedder(Protocol):
    topology: Topology
    version: str
    dim: int
    device: str
    precision: str

    @property
    def calls(self) -> int:
        """Items the model has embedded since load."""
        ...

    def prepare(self, data: bytes) -> Any: ...

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]: ...

    def sample_inputs(self, n: int) -> list[Any]:
        """``n`` prepared inputs shaped like real ones, for calibrating batch sizes."""
        ...


class _BoundModel:
    """What both embedders share: the topology's version and spec, the wrapped operator (which
    counts its calls and knows its precision and dimension), and the shape check."""

    model: Any

    def __init__(self, topology: Topology, device: str, version: str | None) -> None:
        self.topology = topology
        self.version = version or topology.model_version
        self.spec = topology.spec(self.version)
        self.device = device

    def _bind(self, model: Any) -> None:
        self.model = model
        self.precision = str(model.precision)
        self.dim = int(model.dim)

    @property
    def calls(self) -> int:
        return int(self.model.calls)

    def embed(self, prepared: Sequence[Any]) -> npt.NDArray[np.float32]:
        vectors: npt.NDArray[np.float32] = self.model.embed(prepared)
        expected = (len(prepared), self.dim)
        if vectors.shape != expected:
            raise EmbedError(
                f"topology {self.topology.name!r} returned {vectors.shape}, expected {expected}"
            )
        if not np.isfinite(vectors).all():
            raise EmbedError(f"topology {self.topology.name!r} produced non-finite values")
        return vectors


class ImageEmbedder(_BoundModel):
    def __init__(
        self,
        topology: Topology,
        fetch: FetchSettings,
        device: str,
        version: str | None = None,
        precision: str = "auto",
    ) -> None:
        from operators.image_embed import TimmImageEmbedder, load_timm_model

        super().__init__(topology, device, version)
        spec = self.spec
        assert isinstance(spec, TimmModelSpec)
        model = load_timm_model(spec.arch, spec.weights_path(), by_order=spec.map_keys_by_order)
        self._bind(TimmImageEmbedder(model, layer=spec.layer, device=device, precision=precision))
        self.decoder = ImageDecoder(
            max_pixels=fetch.max_image_pixels, min_side=self.model.resize_side
        )

    def prepare(self, data: bytes) -> Any:
        return self.model.preprocess(self.decoder.decode(data))

    def sample_inputs(self, n: int) -> list[Any]:
        side = self.model.resize_side
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(side, side * 3 // 2, 3), dtype=np.uint8)
        tensor = self.model.preprocess(Image.fromarray(pixels))
        return [tensor.clone() for _ in range(n)]


class TextEmbedder(_BoundModel):
    def __init__(
        self,
        topology: Topology,
        fetch: FetchSettings,
        device: str,
        version: str | None = None,
        precision: str = "auto",
    ) -> None:
        from operators.text_embed import TransformersTextEmbedder

        super().__init__(topology, device, version)
        spec = self.spec
        assert isinstance(spec, TextModelSpec)
        self._bind(
            TransformersTextEmbedder(
                spec.model_path(),
                device=device,
                max_length=spec.max_length,
                pooling=spec.pooling,
                precision=precision,
            )
        )
        self.decoder = TextDecoder(max_bytes=fetch.max_text_bytes)

    def prepare(self, data: bytes) -> Any:
        return self.decoder.decode(data)

    def sample_inputs(self, n: int) -> list[Any]:
        from streamer.demo.samples import TEXT_PAIRS

        sentences = [text for pair in TEXT_PAIRS for text in pair]
        return [sentences[i % len(sentences)] for i in range(n)]


def load_embedder(
    topology: Topology,
    fetch: FetchSettings,
    device: str = "auto",
    version: str | None = None,
    precision: str = "auto",
) -> Embedder:
    """Load one model version of the topology (default: its own) on ``device``."""
    chosen = resolve_device(topology.device if device == "auto" else device)
    if topology.media_type == "image":
        return ImageEmbedder(topology, fetch, chosen, version, precision)
    return TextEmbedder(topology, fetch, chosen, version, precision)


class EmbedderPool:
    """The models of one process, one per (topology, version), loaded on first use.

    Workers follow rollouts without a restart: a candidate version's model is loaded the first
    time a batch is written to it. ``get`` may load a model (and, with a ``tuner``, measure its
    best batch size): call it off the event loop.
    """

    def __init__(
        self,
        loader: Callable[[Topology, str], Embedder],
        tuner: Callable[[Embedder], int | None] | None = None,
    ) -> None:
        self._loader = loader
        self._tuner = tuner
        self._models: dict[tuple[str, str], Embedder] = {}
        self._batch_sizes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def get(self, topology: Topology, version: str | None = None) -> Embedder:
        key = (topology.name, version or topology.model_version)
        with self._lock:
            if key not in self._models:
                embedder = self._loader(topology, key[1])
                if self._tuner is not None and (size := self._tuner(embedder)) is not None:
                    self._batch_sizes[key] = size
                self._models[key] = embedder
            return self._models[key]

    def batch_size(self, topology: Topology, version: str | None = None) -> int | None:
        """The calibrated batch size of a loaded model, if it was calibrated."""
        with self._lock:
            return self._batch_sizes.get((topology.name, version or topology.model_version))

    def loaded(self) -> dict[tuple[str, str], Embedder]:
        with self._lock:
            return dict(self._models)

    @property
    def calls(self) -> int:
        return sum(e.calls for e in self.loaded().values())

    @classmethod
    def from_settings(
        cls, fetch: FetchSettings, device: str, precision: str = "auto"
    ) -> EmbedderPool:
        return cls(
            lambda topology, version: load_embedder(topology, fetch, device, version, precision)
        )
