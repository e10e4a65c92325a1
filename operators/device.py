"""Which torch device a model runs on."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["resolve_device"]


def resolve_device(requested: Literal["auto", "cpu", "cuda"] | str = "auto") -> str:
    """``auto`` is cuda when a GPU is visible, else cpu; an explicit cuda without one fails."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but torch sees no CUDA GPU")
    return requested
