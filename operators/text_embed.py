"""Sentence embeddings from a local transformers encoder, pooled over its tokens.

:class:`TextEmbed` is the model stage: texts in, one vector per text out (attention-masked
mean of the token vectors, or the first token's with ``pooling="cls"``). The model and its
tokenizer load from a folder: nothing is fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from streamer.core.errors import EmbedError
from streamer.runner.device import autocast, resolve_precision
from streamer.runner.operator import VECTOR, LoadedModel, ModelOperator

__all__ = [
    "GPU_TOKEN_MULTIPLE",
    "TextEmbed",
    "TransformersTextEmbedder",
    "mean_pool",
    "sample_sentences",
    "token_counts",
    "token_multiple",
]

_WORDS = [
    "a",
    "quiet",
    "harbour",
    "at",
    "dawn",
    "with",
    "fishing",
    "boats",
    "and",
    "gulls",
    "over",
    "the",
    "water",
    "the",
    "committee",
    "approved",
    "the",
    "new",
    "budget",
    "after",
    "a",
    "long",
    "debate",
    "on",
    "taxes",
    "fresh",
    "bread",
    "and",
    "coffee",
    "on",
    "a",
    "wooden",
    "table",
    "near",
    "the",
    "window",
    "researchers",
    "measured",
    "the",
    "speed",
    "of",
    "the",
    "river",
    "after",
    "heavy",
    "rain",
]


def sample_sentences(n: int) -> list[str]:
    """``n`` sentences of 8 to 24 words, like short captions and messages."""
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(_WORDS, size=int(rng.integers(8, 25)))) for _ in range(n)]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


#: on a GPU a call's token count is padded to a multiple of this (tensor-core tiles; and a
#: model call runs at one of a few sequence lengths rather than every one from 1 to 256)
GPU_TOKEN_MULTIPLE = 16


def token_counts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Each text's token count as ``tokenizer`` gives it to a model call: special tokens in,
    truncated to ``max_length`` (what the runner cuts calls by, :mod:`streamer.runner.lengths`)."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return [len(ids) for ids in encoded["input_ids"]]


def token_multiple(device: str, max_length: int) -> int | None:
    """What a call's token count is padded to a multiple of by default: on a GPU
    :data:`GPU_TOKEN_MULTIPLE` (when ``max_length`` is a multiple of it, so no call grows past
    it); on a CPU nothing (padding there is compute)."""
    if device.startswith("cuda") and max_length % GPU_TOKEN_MULTIPLE == 0:
        return GPU_TOKEN_MULTIPLE
    return None


class TransformersTextEmbedder:
    """A loaded encoder: a batch of texts in, pooled vectors out (one row per text, not yet
    unit length). It tells the runner each text's token count (:meth:`lengths`), so texts of
    like length share a call (:mod:`streamer.runner.lengths`)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        max_length: int = 256,
        pooling: Literal["mean", "cls"] = "mean",
        precision: str = "auto",
        pad_to_multiple_of: int | None = None,
    ) -> None:
        """``precision`` ``auto``: bf16/fp16 autocast on a GPU, fp32 on a CPU.
        ``pad_to_multiple_of``: a call's token count rounded up to a multiple of it (default:
        :func:`token_multiple`)."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.pooling = pooling
        self.device = str(device)
        self._device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.max_length = max_length
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
        self.model.eval().to(self._device)
        self.dim = int(self.model.config.hidden_size)
        self.pad_to_multiple_of = pad_to_multiple_of or token_multiple(self.device, max_length)
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        ).to(self._device, non_blocking=True)
        with torch.inference_mode(), autocast(self._device, self.precision):
            hidden = self.model(**encoded).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = mean_pool(hidden, encoded["attention_mask"])
        self.calls += len(texts)
        return pooled.float().cpu().numpy()

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return token_counts(self.tokenizer, texts, self.max_length)

    def sample_inputs(self, n: int) -> list[str]:
        return sample_sentences(n)


@dataclass(frozen=True)
class TextEmbed(ModelOperator[str, npt.NDArray[np.float32]]):
    """Embed texts with the encoder in ``model_dir`` (a folder, or a function that finds it),
    truncated to ``max_length`` tokens and pooled by ``pooling``."""

    name = "embed"
    takes = str
    gives = VECTOR
    error = EmbedError

    model_dir: Path | Callable[[], Path]
    max_length: int = 256
    pooling: Literal["mean", "cls"] = "mean"

    def load(self, device: str, precision: str) -> TransformersTextEmbedder:
        folder = self.model_dir() if callable(self.model_dir) else self.model_dir
        return TransformersTextEmbedder(
            folder,
            device=device,
            max_length=self.max_length,
            pooling=self.pooling,
            precision=precision,
        )

    def output_dim(self, model: LoadedModel[Any, Any], upstream: int | None) -> int:
        assert isinstance(model, TransformersTextEmbedder)
        return model.dim
