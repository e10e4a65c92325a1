"""The fused resize-and-crop gives the pixels of timm's transform, and falls back when it can't."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from timm.data import create_transform
from torchvision import transforms

from operators.preprocess import CropResize, Normalizer, fuse

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def timm_eval(interpolation: str = "bicubic") -> transforms.Compose:
    return create_transform(
        input_size=(3, 224, 224),
        interpolation=interpolation,
        crop_pct=0.875,
        crop_mode="center",
        mean=MEAN,
        std=STD,
        is_training=False,
    )


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    return image.resize(size, Image.Resampling.BICUBIC)


def grey_levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differences of normalised pixels, back in 0-255 units."""
    std = torch.tensor(STD).view(3, 1, 1)
    return ((a - b).abs() * std * 255).round()


def test_the_timm_eval_transform_is_recognised() -> None:
    fused = fuse(timm_eval())
    assert fused is not None
    crop, _ = fused
    assert crop == CropResize(256, 224, 224, Image.Resampling.BICUBIC)
    assert fuse(timm_eval("bilinear")) is not None


@pytest.mark.parametrize(
    "other",
    [
        transforms.Compose([transforms.Resize((256, 256)), transforms.CenterCrop(224),
                            transforms.ToTensor(), transforms.Normalize(MEAN, STD)]),
        transforms.Compose([transforms.Resize(256, max_size=300), transforms.CenterCrop(224),
                            transforms.ToTensor(), transforms.Normalize(MEAN, STD)]),
        transforms.Compose([transforms.Resize(200), transforms.CenterCrop(224),
                            transforms.ToTensor(), transforms.Normalize(MEAN, STD)]),
        transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()]),
        lambda image: image,
    ],
)  # fmt: skip
def test_other_transforms_are_not_fused(other: object) -> None:
    assert fuse(other) is None


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_the_pixels_are_the_full_transforms(name: str) -> None:
    transform = timm_eval()
    fused = fuse(transform)
    assert fused is not None
    crop, normalise = fused
    for size in [(480, 320), (640, 427), (1001, 777), (320, 480), (257, 1000), (376, 990),
                 (300, 300), (224, 224), (150, 100), (90, 600)]:  # fmt: skip
        image = photo(name, size)
        pixels = crop(image)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 224, 224)
        diff = grey_levels(transform(image), normalise(pixels[None])[0])
        if size[0] >= size[1]:  # landscape: the same passes in the same order
            assert diff.max() <= 1, size
        assert diff.max() <= 2, size
        assert diff.mean() < 0.25, size


def test_the_normaliser_matches_to_tensor_and_normalize() -> None:
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8))
    expected = torch.stack(
        [transforms.Normalize(MEAN, STD)(p.float() / 255) for p in pixels]
    )  # fmt: skip
    normalise = Normalizer(MEAN, STD)
    assert torch.allclose(normalise(pixels), expected, atol=1e-5)
    already = expected.clone()
    assert normalise(already) is already  # float input is taken as normalised


def test_a_grey_image_gives_three_equal_channels() -> None:
    crop = CropResize(256, 224, 224, Image.Resampling.BICUBIC)
    pixels = crop(photo("coffee", (400, 300)).convert("L"))
    assert pixels.shape == (3, 224, 224)
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
