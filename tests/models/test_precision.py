"""The reduced-precision path (what a GPU runs) gives the same embeddings as fp32.

bf16 autocast also runs on a CPU, so CI checks the very code a GPU worker uses; on a GPU the
worker picks it by itself (``precision=auto``).
"""

import numpy as np
import pytest
import torch

from operators.device import autocast, resolve_precision, to_device
from streamer.models.embedders import ImageEmbedder, TextEmbedder, load_embedder
from streamer.demo.samples import TEXT_PAIRS
from streamer.config.settings import FetchSettings
from tests.models.test_image_model import jpeg_bytes, photo
from topologies import IMAGE, TEXT


def test_auto_precision_is_fp32_on_a_cpu_and_explicit_choices_stand() -> None:
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cuda") == "fp16"
    with pytest.raises(ValueError):
        resolve_precision("int3", "cpu")


def test_autocast_computes_in_the_chosen_dtype() -> None:
    layer = torch.nn.Linear(4, 4)
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with torch.inference_mode(), autocast(torch.device("cpu"), "fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    assert to_device(torch.ones(2), torch.device("cpu")).device.type == "cpu"


def test_bf16_image_embeddings_match_fp32(image_embedder: ImageEmbedder) -> None:
    half = load_embedder(IMAGE, FetchSettings(), "cpu", precision="bf16")
    assert half.precision == "bf16"
    tensors = [half.prepare(jpeg_bytes(photo(name))) for name in ("chelsea", "coffee", "rocket")]
    ours, reference = half.embed(tensors), image_embedder.embed(tensors)
    assert ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.98, cosines


def test_bf16_text_embeddings_match_fp32(text_embedder: TextEmbedder) -> None:
    half = load_embedder(TEXT, FetchSettings(), "cpu", precision="bf16")
    sentences = [pair[0] for pair in TEXT_PAIRS[:6]]
    cosines = (half.embed(sentences) * text_embedder.embed(sentences)).sum(axis=1)
    assert cosines.min() >= 0.98, cosines
