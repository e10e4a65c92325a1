"""Which torch device a model runs on, at which precision, and how a batch gets there.

On a GPU the fast path is: half precision through autocast (bf16 where the GPU supports it,
else fp16), channels-last memory for convolutional models, and batches copied from pinned
host memory without blocking. On a CPU the same code runs in fp32 unless asked otherwise
(bf16 autocast works on CPUs too, and is only faster on those with bf16 units).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

__all__ = [
    "Precision",
    "autocast",
    "device_label",
    "resolve_device",
    "resolve_precision",
    "to_device",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: Literal["auto", "cpu", "cuda"] | str = "auto") -> str:
    """``auto`` is cuda when a GPU is visible, else cpu; an explicit cuda without one fails."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but torch sees no CUDA GPU")
    return requested


def resolve_precision(requested: Precision | str, device: str) -> Literal["fp32", "bf16", "fp16"]:
    """``auto``: bf16 on a GPU that has it, fp16 on an older GPU, fp32 on a CPU."""
    if requested == "auto":
        if not device.startswith("cuda"):
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, not {requested!r}")
    return requested  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the model call (a no-op in fp32)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a host batch to ``device``; to a GPU through pinned memory, without blocking. A
    batch already on a GPU (crops decoded there) has no host memory to pin."""
    if device.type != "cuda" or batch.device.type != "cpu":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)


def device_label(device: str) -> str:
    """A human name for the hardware, e.g. ``cuda:0 NVIDIA H100 80GB HBM3`` or ``cpu x2``."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu x{torch.get_num_threads()}"
