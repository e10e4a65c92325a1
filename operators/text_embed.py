"""Sentence embeddings from a local transformers model with attention-masked mean pooling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from operators.device import autocast, resolve_precision
from operators.normalize import l2_normalize

__all__ = ["TransformersTextEmbedder", "mean_pool"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class TransformersTextEmbedder:
    """Batch-first text embedder: strings in, unit vectors out, one row per string."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        max_length: int = 256,
        pooling: Literal["mean", "cls"] = "mean",
        precision: str = "auto",
    ) -> None:
        """``precision`` ``auto``: bf16/fp16 autocast on a GPU, fp32 on a CPU."""
        self.pooling = pooling
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, device)
        self.max_length = max_length
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        self.model.eval().to(self.device)
        self.dim = int(self.model.config.hidden_size)
        self.calls = 0

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            hidden = self.model(**encoded).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = mean_pool(hidden, encoded["attention_mask"])
        self.calls += len(texts)
        return l2_normalize(pooled.float().cpu().numpy())
