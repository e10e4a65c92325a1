"""The HSV colour histogram: a handcrafted operator whose vectors compare colours."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from operators import Normalize
from operators.histogram import HsvHistogram
from streamer.core.errors import ConfigError, EmbedError
from streamer.runner import BoundCpu


def photo(rgb: tuple[int, int, int], *, seed: int = 0) -> Image.Image:
    """A flat colour with some grain, as a photo of one colour would have."""
    noise = np.random.default_rng(seed).integers(-25, 26, (64, 96, 3))
    pixels = np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def embed(image: Image.Image, histogram: HsvHistogram | None = None) -> np.ndarray:
    return Normalize().apply((histogram or HsvHistogram()).apply(image))


def test_a_red_photo_is_nearer_a_red_photo_than_a_blue_one() -> None:
    red, other_red, blue = (
        embed(photo((210, 30, 40), seed=1)),
        embed(photo((180, 20, 25), seed=2)),
        embed(photo((30, 50, 200), seed=3)),
    )
    assert float(red @ other_red) > 0.5 > float(red @ blue)


def test_reds_on_either_side_of_hue_zero_share_their_bin() -> None:
    # hue 357 degrees and hue 3 degrees: one colour, at both ends of the hue circle
    purplish, orangish = embed(photo((255, 0, 13), seed=0)), embed(photo((255, 13, 0), seed=0))
    assert float(purplish @ orangish) > 0.9


def test_the_dimension_is_the_number_of_bins_and_the_vector_unit_length() -> None:
    for bins, dim in (((8, 4, 4), 128), ((16, 4, 4), 256), ((1, 1, 1), 1)):
        histogram = HsvHistogram(bins=bins)
        vector = histogram.apply(photo((90, 160, 60)))
        assert histogram.vector_dim(None) == dim
        assert vector.shape == (dim,) and vector.dtype == np.float32
        # square roots of shares that sum to 1: unit length already, so Normalize keeps it
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
        assert float(np.linalg.norm(Normalize().apply(vector))) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (40, 30), 128),
        Image.new("RGBA", (40, 30), (200, 30, 40, 90)),
        photo((200, 30, 40)).convert("P"),
        Image.new("RGB", (1, 1), (0, 0, 255)),
    ],
    ids=["greyscale", "rgba", "palette", "one-pixel"],
)
def test_any_mode_and_size_gives_a_unit_vector(image: Image.Image) -> None:
    vector = HsvHistogram().apply(image)
    assert vector.shape == (128,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_an_empty_image_is_that_items_error() -> None:
    bound = BoundCpu(HsvHistogram(), HsvHistogram().apply)
    items: list[Any] = [Image.new("RGB", (0, 0)), photo((0, 0, 200)), b"\xff\xd8"]
    empty, fine, not_an_image = bound(items)
    assert isinstance(empty, EmbedError) and empty.stage == "embed"
    assert "0x0 image has no colours" in str(empty)
    assert isinstance(fine, np.ndarray)
    assert isinstance(not_an_image, EmbedError) and "histogram" in str(not_an_image)


@pytest.mark.parametrize("bins", [(0, 4, 4), (8, 4), (8, 4, 300)])
def test_bins_are_checked_when_declared(bins: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="bins must be three counts"):
        HsvHistogram(bins=bins)  # type: ignore[arg-type]
