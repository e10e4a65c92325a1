"""The reduced-precision path (what a GPU runs) gives the same embeddings as fp32.

bf16 autocast also runs on a CPU, so CI checks the very code a GPU worker uses; on a GPU the
worker picks it by itself (``precision=auto``).
"""

import numpy as np
import pytest
import torch

from streamer.config.settings import FetchSettings
from streamer.demo.samples import TEXT_PAIRS
from streamer.runner.context import Context
from streamer.runner.device import autocast, resolve_precision, to_device
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from tests.models.conftest import embed
from tests.models.test_image_model import jpeg_bytes, photo
from topologies import IMAGE, TEXT

BF16 = Context(FetchSettings(), device="cpu", precision="bf16")


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


def test_bf16_image_embeddings_match_fp32(image_plan: Plan, runner: Runner) -> None:
    half = bind(IMAGE, None, BF16)
    assert half.precision == "bf16" and image_plan.precision == "fp32"
    photos = [jpeg_bytes(photo(name)) for name in ("chelsea", "coffee", "rocket")]
    ours, reference = embed(runner, half, photos), embed(runner, image_plan, photos)
    assert ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.98, cosines


def test_bf16_text_embeddings_match_fp32(text_plan: Plan, runner: Runner) -> None:
    half = bind(TEXT, None, BF16)
    sentences = [pair[0] for pair in TEXT_PAIRS[:6]]
    cosines = (embed(runner, half, sentences) * embed(runner, text_plan, sentences)).sum(axis=1)
    assert cosines.min() >= 0.98, cosines
