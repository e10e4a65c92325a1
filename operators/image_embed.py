"""Image embeddings from timm models: the pooled penultimate layer, or an earlier one.

:class:`TimmEmbed` is the model stage: preprocessed crops in (``uint8`` from the fused
transform, normalised here a batch at a time on the model's device; or already normalised
floats), one vector per image out. ``layer`` names an earlier module whose pooled output is
the embedding. On a GPU the model runs in bf16/fp16 autocast with channels-last memory, and
batches arrive from pinned host memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from operators.preprocess import Normalizer
from operators.timm_model import TimmModel
from streamer.core.errors import EmbedError
from streamer.runner.device import autocast, resolve_precision, to_device
from streamer.runner.operator import VECTOR, BoundModel, LoadedModel, ModelOperator

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = ["TimmEmbed", "TimmImageEmbedder", "shared_embedder"]


class TimmImageEmbedder:
    """A loaded timm model: a batch of preprocessed crops in, pooled features out (one row per
    image, not yet unit length)."""

    def __init__(
        self,
        model: torch.nn.Module,
        data_config: dict[str, Any],
        *,
        layer: str | None = None,
        device: str = "cpu",
        precision: str = "auto",
    ) -> None:
        self.device = str(device)
        self._device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = self._device.type == "cuda"
        self.model = model.eval().to(self._device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.layer = layer
        self.data_config = data_config
        self.normalizer = Normalizer(data_config["mean"], data_config["std"])
        self.calls = 0
        # the hooked layer's output, per thread: ingest and queries share one model
        self._local = threading.local()
        if layer is not None:
            modules = dict(self.model.named_modules())
            if layer not in modules:
                raise ValueError(f"model has no module {layer!r}")
            modules[layer].register_forward_hook(self._capture)
        probe = to_device(torch.zeros(1, *data_config["input_size"]), self._device)
        self.dim = int(self._features(probe).shape[1])

    def _capture(self, _module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._local.captured = output

    def _model_input(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """A batch on the model's device, normalised (fused crops are uint8)."""
        return self.normalizer(to_device(torch.stack(list(tensors)), self._device))

    @torch.inference_mode()
    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(self._device, self.precision):
            if self.layer is None:
                features = self.model.forward_features(batch)  # type: ignore[operator]
                return self.model.forward_head(features, pre_logits=True)  # type: ignore[operator]
            self.model(batch)
        out, self._local.captured = getattr(self._local, "captured", None), None
        if out is None:
            raise EmbedError(f"layer {self.layer!r} produced no output")
        return out.float().mean(dim=(2, 3)) if out.ndim == 4 else out.float().flatten(1)

    def __call__(self, batch: Sequence[torch.Tensor]) -> npt.NDArray[np.float32]:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self._features(self._model_input(batch))
        self.calls += len(batch)
        return features.float().cpu().numpy()

    def sample_inputs(self, n: int) -> list[torch.Tensor]:
        """Crops shaped like the preprocess stage's (uint8, the model's input size)."""
        generator = torch.Generator().manual_seed(0)
        shape = tuple(int(v) for v in self.data_config["input_size"])
        crop = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        return [crop.clone() for _ in range(n)]

    @torch.inference_mode()
    def classify(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class logits, for checking that the weights are the real ones."""
        batch = self._model_input(tensors)
        with autocast(self._device, self.precision):
            return self.model(batch).float().cpu()


@dataclass(frozen=True)
class TimmEmbed(ModelOperator[torch.Tensor, npt.NDArray[np.float32]]):
    """Embed images with ``model``: the pooled penultimate layer, or the pooled output of
    ``layer`` (e.g. ``"blocks.5"``)."""

    name = "embed"
    takes = torch.Tensor
    gives = VECTOR
    error = EmbedError

    model: TimmModel
    layer: str | None = None

    def bind(self, context: Context) -> BoundModel[torch.Tensor, npt.NDArray[np.float32]]:
        """The model loaded once per context and placement: every stage of the process that
        embeds with the same weights and layer (photos, video frames) shares it."""
        return BoundModel(self, shared_embedder(context, self, *self.placement(context)))

    def load(self, device: str, precision: str) -> TimmImageEmbedder:
        return TimmImageEmbedder(
            self.model.load(),
            self.model.data_config(),
            layer=self.layer,
            device=device,
            precision=precision,
        )

    def output_dim(self, model: LoadedModel[Any, Any], upstream: int | None) -> int:
        assert isinstance(model, TimmImageEmbedder)
        return model.dim


@dataclass(frozen=True)
class _Loader:
    """Loads one model at one placement; equal loaders are one key of a context's shared
    resources, so the model loads once."""

    model: TimmModel
    layer: str | None
    device: str
    precision: str

    def __call__(self, _context: Context) -> TimmImageEmbedder:
        embed = TimmEmbed(self.model, layer=self.layer)
        return embed.load(self.device, self.precision)


def shared_embedder(
    context: Context, embed: TimmEmbed, device: str, precision: str
) -> TimmImageEmbedder:
    """``embed``'s model at ``device`` and ``precision``, loaded once in ``context``."""
    return context.shared(_Loader(embed.model, embed.layer, device, precision))
