"""A timm architecture with weights from a local file, and the data configuration it was
trained with (input size, crop, interpolation, mean and std).

The spec is a declaration: nothing loads until a stage that uses it is bound. The preprocess
and the embed stages of a topology name the same spec, so the transform is always the model's
own (a nearest-for-bicubic slip changes the embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

__all__ = ["TimmModel", "WeightsSource", "load_state_dict_by_order", "load_timm_model"]

#: a weights file, or a function that finds it (e.g. in the package that ships it)
WeightsSource = Path | Callable[[], Path]


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
    import timm

    model = timm.create_model(arch, pretrained=False)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if by_order:
        load_state_dict_by_order(model, state)
    else:
        model.load_state_dict(state, strict=True)
    return model.eval()


@lru_cache(maxsize=32)
def _data_config(arch: str) -> dict[str, Any]:
    import timm
    from timm.data import resolve_data_config

    return dict(resolve_data_config({}, model=timm.create_model(arch, pretrained=False)))


@dataclass(frozen=True)
class TimmModel:
    """``arch`` with the weights at ``weights``; ``map_keys_by_order`` for checkpoints whose key
    names differ from timm's (same order, same shapes: every shape is checked)."""

    arch: str
    weights: WeightsSource
    map_keys_by_order: bool = False

    def weights_path(self) -> Path:
        return self.weights() if callable(self.weights) else self.weights

    def load(self) -> torch.nn.Module:
        return load_timm_model(self.arch, self.weights_path(), by_order=self.map_keys_by_order)

    def data_config(self) -> dict[str, Any]:
        """timm's resolved evaluation config of the architecture."""
        return _data_config(self.arch)

    def resize_side(self) -> int:
        """The shortest side the transform resizes to before cropping (decoding may stop
        there)."""
        config = self.data_config()
        return int(int(config["input_size"][-1]) / float(config.get("crop_pct", 1.0)))
