"""Image embeddings from timm models, preprocessed exactly as the model was trained.

The transform comes from the model's own pretrained configuration (timm's resolved data
config: input size, crop, interpolation, mean and std): a nearest-for-bicubic slip changes the
embedding. Its usual shape (resize, center crop, normalise) runs fused (``operators.preprocess``):
only the cropped pixels are resampled, and a batch is normalised at once, on the model's device.
The embedding is the pooled penultimate layer, or the pooled output of an earlier module named
by ``layer``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from operators.device import autocast, resolve_precision, to_device
from operators.normalize import l2_normalize
from operators.preprocess import fuse

__all__ = ["TimmImageEmbedder", "load_state_dict_by_order", "load_timm_model"]


def load_state_dict_by_order(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights whose key names differ from the model's but whose order and shapes match.

    Every tensor's shape is checked, so a wrong architecture fails loudly instead of loading
    garbage.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"checkpoint has {len(state)} tensors, model expects {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"shape mismatch: checkpoint {src_key} {tuple(tensor.shape)} "
                f"vs model {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=True)


def load_timm_model(arch: str, weights: Path, *, by_order: bool = False) -> torch.nn.Module:
    """A timm architecture with local weights (no hub access)."""
    model = timm.create_model(arch, pretrained=False)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if by_order:
        load_state_dict_by_order(model, state)
    else:
        model.load_state_dict(state, strict=True)
    return model.eval()


class TimmImageEmbedder:
    """Batch-first image embedder: PIL images in, unit vectors out, one row per image.

    ``precision`` ``auto`` runs a GPU in bf16/fp16 autocast and a CPU in fp32; on a GPU the
    model uses channels-last memory (faster convolutions on tensor cores) and batches arrive
    from pinned host memory.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        layer: str | None = None,
        device: str = "cpu",
        precision: str = "auto",
    ) -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, device)
        self.channels_last = self.device.type == "cuda"
        self.model = model.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.layer = layer
        self.data_config: dict[str, Any] = resolve_data_config({}, model=model)
        self.transform = create_transform(**self.data_config, is_training=False)
        # the same transform, fused: uint8 crops from the decode workers, normalised in batches
        self._fused = fuse(self.transform)
        self.calls = 0
        # the hooked layer's output, per thread: ingest and queries share one model
        self._local = threading.local()
        if layer is not None:
            modules = dict(self.model.named_modules())
            if layer not in modules:
                raise ValueError(f"model has no module {layer!r}")
            modules[layer].register_forward_hook(self._capture)
        probe = to_device(torch.zeros(1, *self.data_config["input_size"]), self.device)
        self.dim = int(self._features(probe).shape[1])

    @property
    def resize_side(self) -> int:
        """The shortest side the transform resizes to before cropping."""
        size = int(self.data_config["input_size"][-1])
        return int(size / float(self.data_config.get("crop_pct", 1.0)))

    def _capture(self, _module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._local.captured = output

    def _model_input(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """A batch on the model's device, normalised (preprocessed crops are uint8)."""
        batch = to_device(torch.stack(list(tensors)), self.device)
        return self._fused[1](batch) if self._fused is not None else batch

    @torch.inference_mode()
    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            if self.layer is None:
                features = self.model.forward_features(batch)  # type: ignore[operator]
                return self.model.forward_head(features, pre_logits=True)  # type: ignore[operator]
            self.model(batch)
        out, self._local.captured = getattr(self._local, "captured", None), None
        assert out is not None
        return out.float().mean(dim=(2, 3)) if out.ndim == 4 else out.float().flatten(1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The model's own transform (its crop as uint8 where fused, normalised otherwise);
        safe to run in decode workers."""
        if self._fused is not None:
            return self._fused[0](image)
        tensor = self.transform(image)
        assert isinstance(tensor, torch.Tensor)
        return tensor

    def embed(self, tensors: Sequence[torch.Tensor]) -> npt.NDArray[np.float32]:
        if not tensors:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self._features(self._model_input(tensors))
        self.calls += len(tensors)
        return l2_normalize(features.float().cpu().numpy())

    @torch.inference_mode()
    def classify(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class logits, for checking that the weights are the real ones."""
        batch = self._model_input(tensors)
        with autocast(self.device, self.precision):
            return self.model(batch).float().cpu()
