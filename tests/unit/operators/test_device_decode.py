"""Decoding on the model's device (run here on the CPU device, through the same code): JPEG
batches give the model's crops, close to the CPU path's; what the device cannot take falls back
per item to the CPU path; bad items are decode errors that never touch their neighbours."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from operators import device_decode
from operators.decode import DecodeImage
from operators.device_decode import SAMPLE_PHOTO_SIZE, DeviceImagePrepare, DevicePreparer
from operators.preprocess import TimmPreprocess
from operators.timm_model import TimmModel
from streamer.config.settings import FetchSettings
from streamer.core.errors import ConfigError, DecodeError, StageError
from streamer.runner.context import Context
from streamer.runner.operator import BoundModel

#: the architecture's data configuration is all these tests read: no weights are loaded
SPEC = TimmModel("efficientnet_lite0", Path("never-loaded.pth"))
CPU = Context(FetchSettings(), device="cpu")


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    return image.resize(size, Image.Resampling.BICUBIC)


def encoded(image: Image.Image, kind: str = "JPEG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def rotated_jpeg(image: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, exif=exif)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A JPEG whose header claims a size its data does not have (decoding it would fail)."""
    raw = bytearray(encoded(photo("coffee", (16, 16))))
    sof = raw.index(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)


class Spy:
    """Records how many images each call of ``decode_jpeg`` was given; ``refuse`` makes
    calls fail: batched ones (more than one image), or those given a refused payload."""

    def __init__(self, refuse_batches: bool = False, refuse: bytes | None = None) -> None:
        self.calls: list[int] = []
        self.refuse_batches = refuse_batches
        self.refuse = refuse
        self.real = device_decode.decode_jpeg

    def __call__(self, images: list[torch.Tensor], **kwargs: Any) -> list[torch.Tensor]:
        self.calls.append(len(images))
        if self.refuse_batches and len(images) > 1:
            raise RuntimeError("nvJPEG refused the batch")
        if self.refuse is not None and any(bytes(i.numpy()) == self.refuse for i in images):
            raise RuntimeError("nvJPEG refused this file")
        return list(self.real(images, **kwargs))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    spy = Spy()
    monkeypatch.setattr(device_decode, "decode_jpeg", spy)
    yield spy


@pytest.fixture(scope="module")
def stage() -> BoundModel[bytes, torch.Tensor]:
    return DeviceImagePrepare(DecodeImage(min_side=SPEC), TimmPreprocess(SPEC)).bind(CPU)


@pytest.fixture(scope="module")
def cpu_path() -> Any:
    """Today's CPU path: the reduced-size decode, then the fused crop."""
    decode, crop = DecodeImage(min_side=SPEC).bind(CPU), TimmPreprocess(SPEC).bind(CPU)
    return lambda item: crop.fn(decode.fn(item))


@pytest.fixture(scope="module")
def full_size_path() -> Any:
    """The CPU path with full-size decoding: timm's pixels within 2 grey levels."""
    decode, crop = DecodeImage(min_side=None).bind(CPU), TimmPreprocess(SPEC).bind(CPU)
    return lambda item: crop.fn(decode.fn(item))


def grey_levels(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float]:
    diff = (a.int() - b.int()).abs().float()
    return int(diff.max()), float(diff.mean())


SIZES = [(1920, 1280), (1280, 1920), (4000, 3000), (640, 427), (300, 300), (224, 224),
         (150, 100), (90, 600), (257, 1000)]  # fmt: skip


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_a_jpeg_batch_is_decoded_in_one_call_and_gives_the_models_crops(
    name: str, stage: BoundModel[bytes, torch.Tensor], spy: Spy, cpu_path: Any,
    full_size_path: Any,
) -> None:  # fmt: skip
    jpegs = [encoded(photo(name, size), quality=95) for size in SIZES]
    crops = stage(jpegs)
    assert spy.calls == [len(jpegs)]  # one batched decode, nothing on the CPU path
    for size, jpeg, crop in zip(SIZES, jpegs, crops, strict=True):
        assert isinstance(crop, torch.Tensor), (size, crop)
        assert crop.dtype == torch.uint8 and crop.shape == (3, 224, 224)
        # the full-size CPU path has the same pixels but for resampling rounding (Pillow
        # rounds to 8 bits between its two passes): measured max 7, mean <= 0.21
        most, mean = grey_levels(crop, full_size_path(jpeg))
        assert most <= 8 and mean <= 0.3, (size, most, mean)
        # today's path decodes large JPEGs at reduced size (DCT scaling), a different
        # low-pass filter: measured max 26, mean <= 0.87 (1920x1280), max 7, mean <= 0.21 below
        most, mean = grey_levels(crop, cpu_path(jpeg))
        assert mean <= 1.2, (size, most, mean)
        if max(size) <= 1000:  # not decoded at reduced size on the CPU either
            assert most <= 8 and mean <= 0.3, (size, most, mean)


def test_what_the_device_cannot_take_falls_back_per_item_to_the_cpu_path(
    stage: BoundModel[bytes, torch.Tensor], spy: Spy, cpu_path: Any
) -> None:
    image = photo("astronaut", (480, 320))
    plain = encoded(image)
    others = {
        "png": encoded(image, "PNG"),
        "webp": encoded(image, "WEBP"),
        "cmyk": encoded(image.convert("CMYK")),
    }
    crops = stage([plain, *others.values(), plain])
    assert spy.calls == [2]  # the two plain JPEGs, and only them
    for kind, data_, crop in zip(others, others.values(), crops[1:-1], strict=True):
        assert isinstance(crop, torch.Tensor), kind
        assert torch.equal(crop, cpu_path(data_)), kind  # exactly today's path
    assert torch.equal(crops[0], crops[-1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_are_turned_upright_on_the_device_as_pillow_turns_them(
    stage: BoundModel[bytes, torch.Tensor], spy: Spy, full_size_path: Any, orientation: int
) -> None:
    image = photo("astronaut", (480, 320))
    data = rotated_jpeg(image, orientation)
    (crop,) = stage([data])
    assert spy.calls == [1]  # decoded on the device, not sent the CPU way
    assert isinstance(crop, torch.Tensor)
    # the full-size CPU path turns it with Pillow's exif_transpose: the same pixels but for
    # resampling rounding
    most, mean = grey_levels(crop, full_size_path(data))
    assert most <= 8 and mean <= 0.3, (orientation, most, mean)
    if orientation != 1:
        assert grey_levels(crop, full_size_path(encoded(image)))[1] > 3  # not as stored


def test_a_grey_jpeg_is_decoded_on_the_device_as_rgb(
    stage: BoundModel[bytes, torch.Tensor], spy: Spy, full_size_path: Any
) -> None:
    grey = encoded(photo("camera", (400, 300)).convert("L"))
    (crop,) = stage([grey])
    assert spy.calls == [1]
    assert isinstance(crop, torch.Tensor) and crop.shape == (3, 224, 224)
    assert torch.equal(crop[0], crop[1]) and torch.equal(crop[1], crop[2])
    most, mean = grey_levels(crop, full_size_path(grey))
    assert most <= 8 and mean <= 0.3, (most, mean)


def test_bad_items_are_decode_errors_and_their_neighbours_go_on(
    stage: BoundModel[bytes, torch.Tensor], spy: Spy
) -> None:
    good = encoded(photo("chelsea", (640, 427)))
    truncated = good[: len(good) // 2]
    batch = [good, truncated, b"", b"%PDF-1.7 not an image", jpeg_claiming(9000, 9000), good]
    out = stage(batch)
    assert len(out) == len(batch)
    assert isinstance(out[0], torch.Tensor) and torch.equal(out[0], out[-1])
    errors = {i: o for i, o in enumerate(out) if isinstance(o, StageError)}
    assert set(errors) == {1, 2, 3, 4}
    assert all(isinstance(e, DecodeError) for e in errors.values())
    assert "corrupt or truncated" in errors[1].cause
    assert "empty" in errors[2].cause
    assert "not an image" in errors[3].cause
    # the cap comes from the header, before anything is decoded (decoding it would fail
    # as truncated), and is the process's (STREAMER_FETCH_MAX_IMAGE_PIXELS, 64M)
    assert errors[4].cause == "9000x9000 image has 81000000 pixels, over 64000000"
    # the truncated JPEG failed the batch: retried alone, then the CPU path named the cause
    assert spy.calls == [3, 1, 1, 1]


def test_a_declared_pixel_cap_holds_on_the_device_path(spy: Spy) -> None:
    capped = DeviceImagePrepare(DecodeImage(min_side=SPEC, max_pixels=100), TimmPreprocess(SPEC))
    tiny, small = encoded(photo("coffee", (10, 10))), encoded(photo("coffee", (20, 10)))
    out = capped.bind(CPU)([tiny, small])
    assert isinstance(out[0], torch.Tensor)
    assert isinstance(out[1], DecodeError) and "200 pixels, over 100" in out[1].cause
    assert spy.calls == [1]


def test_a_batch_the_decoder_refuses_is_decoded_one_by_one(
    stage: BoundModel[bytes, torch.Tensor], monkeypatch: pytest.MonkeyPatch, cpu_path: Any
) -> None:
    jpegs = [encoded(photo(name, (640, 480))) for name in ("astronaut", "coffee", "rocket")]
    expected = stage(jpegs)
    spy = Spy(refuse_batches=True, refuse=jpegs[1])
    monkeypatch.setattr(device_decode, "decode_jpeg", spy)
    out = stage(jpegs)
    assert spy.calls == [3, 1, 1, 1]
    assert torch.equal(out[0], expected[0]) and torch.equal(out[2], expected[2])
    # the one file the device refuses even alone is decoded by the CPU path
    assert torch.equal(out[1], cpu_path(jpegs[1]))


def test_sample_inputs_are_camera_sized_jpegs(stage: BoundModel[bytes, torch.Tensor]) -> None:
    model = stage.model
    assert isinstance(model, DevicePreparer)
    assert model.device == "cpu" and model.precision == "fp32"
    samples = model.sample_inputs(3)
    assert len(samples) == 3
    with Image.open(io.BytesIO(samples[0])) as image:
        assert image.format == "JPEG" and image.size == SAMPLE_PHOTO_SIZE
    assert 200_000 < len(samples[0]) < 2_000_000  # a real photo's size, not a flat image
    crops = model(samples)
    assert all(isinstance(c, torch.Tensor) and c.shape == (3, 224, 224) for c in crops)
    assert float(np.std(crops[0].numpy())) > 10  # photo-like content


def test_the_stage_declares_what_the_planner_needs() -> None:
    prepare = DeviceImagePrepare(DecodeImage(min_side=SPEC), TimmPreprocess(SPEC))
    assert (prepare.name, prepare.stage) == ("decode", "decode")
    assert prepare.takes is bytes and prepare.gives is torch.Tensor
    assert DeviceImagePrepare.prepares is True
    assert DeviceImagePrepare.fits(TimmPreprocess(SPEC))
    assert not DeviceImagePrepare.fits(TimmPreprocess(SPEC, fused=False))
    assert "DecodeImage(min_side=TimmModel(arch='efficientnet_lite0'" in prepare.describe()


def test_a_transform_the_device_cannot_reproduce_is_refused() -> None:
    decoder = DecodeImage().decoder(FetchSettings())
    with pytest.raises(ConfigError, match="not a resize and center crop"):
        DevicePreparer(decoder, lambda image: image, device="cpu", precision="fp32")


def test_photos_of_one_size_are_resized_together_as_each_would_be_alone(
    stage: BoundModel[bytes, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    # more photos of one size than one resize call takes, between photos of other sizes:
    # every crop is the one that photo gets alone, in the order given
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    sizes = [(640, 427)] * (device_decode.RESIZE_CHUNK + 3) + [(300, 300), (427, 640)] * 2
    jpegs = [encoded(photo(names[i % 4], size)) for i, size in enumerate(sizes)]
    calls: list[int] = []
    resize_crop = DevicePreparer._resize_crop

    def counted(self: DevicePreparer, images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return resize_crop(self, images)

    monkeypatch.setattr(DevicePreparer, "_resize_crop", counted)
    together = stage(jpegs)
    # 640x427 in two calls (the chunk, then 3), 300x300 and 427x640 in one each
    assert sorted(calls) == sorted([device_decode.RESIZE_CHUNK, 3, 2, 2])
    for jpeg, crop in zip(jpegs, together, strict=True):
        alone = stage([jpeg])[0]
        assert isinstance(crop, torch.Tensor) and isinstance(alone, torch.Tensor)
        assert torch.equal(crop, alone)
