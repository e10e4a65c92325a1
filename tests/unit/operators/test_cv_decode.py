import io
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import operators.cv_decode as cv_decode
from operators.cv_decode import CvImageDecoder, jpeg_reduction
from operators.decode import OPENCV_FROM_CORES, DecodeImage, ImageDecoder, auto_jpeg_backend
from streamer.config.settings import FetchSettings
from streamer.core.errors import ConfigError, DecodeError
from tests.unit.operators.test_decode import png_header_only


def photo(width: int, height: int) -> Image.Image:
    """Smooth colour fields and noise: JPEG has real work to do, and every pixel differs."""
    rng = np.random.default_rng(width * 7 + height)
    cells = Image.fromarray(rng.integers(0, 256, (6, 9, 3), dtype=np.uint8))
    smooth = np.asarray(cells.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(smooth + noise, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, kind: str = "JPEG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.fixture
def no_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV must not be asked to decode."""

    def refuse(*_: object) -> None:
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv_decode.cv2, "imdecode", refuse)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_as_pillow_does(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(photo(96, 64), exif=exif, quality=95)
    ours = CvImageDecoder(max_pixels=10**7).decode(data)
    theirs = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert ours.size == theirs.size == ((64, 96) if orientation >= 5 else (96, 64))
    assert np.array_equal(pixels(ours), np.asarray(theirs))


def test_a_large_jpeg_is_decoded_reduced_with_pillows_pixels() -> None:
    data = encoded(photo(1920, 1280), quality=90)
    ours = CvImageDecoder(max_pixels=10**8, min_side=256).decode(data)
    assert ours.size == (480, 320)
    pil = ImageDecoder(max_pixels=10**8, min_side=256).decode(data)
    assert np.array_equal(pixels(ours), pixels(pil))


@pytest.mark.parametrize(
    ("size", "min_side", "factor"),
    [
        ((1920, 1280), 256, 4),
        ((1280, 1920), 256, 4),
        ((4000, 3000), 256, 8),
        ((1024, 768), 256, 2),
        ((600, 400), 256, 1),
        ((514, 514), 256, 2),
        ((512, 512), 256, 1),  # Pillow's rule: scaled only below half size
        ((1920, 1280), None, 1),
    ],
)
def test_the_reduction_factor(size: tuple[int, int], min_side: int | None, factor: int) -> None:
    assert jpeg_reduction(size, min_side) == factor


def test_the_reduction_is_pillows_draft_and_never_below_min_side() -> None:
    tiny = encoded(photo(8, 8))
    sof = tiny.index(b"\xff\xc0") + 5  # the frame header's height and width: draft reads them
    for width in range(100, 5000, 37):
        for height in (width // 3, width * 2 // 3, width, width * 3 // 2 + 1):
            for min_side in (64, 224, 256, 320):
                factor = jpeg_reduction((width, height), min_side)
                header = tiny[:sof] + struct.pack(">HH", height, width) + tiny[sof + 4 :]
                image = Image.open(io.BytesIO(header))
                assert image.size == (width, height)
                scale = min_side / min(width, height)
                if scale < 0.5:
                    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
                assert image.size == (math.ceil(width / factor), math.ceil(height / factor))
                assert min(image.size) >= min(min_side, width, height)


def test_grey_jpegs_become_rgb_as_pillow_makes_them() -> None:
    data = encoded(photo(640, 480).convert("L"))
    ours = CvImageDecoder(max_pixels=10**7, min_side=100).decode(data)
    pil = ImageDecoder(max_pixels=10**7, min_side=100).decode(data)
    assert np.array_equal(pixels(ours), pixels(pil))


@pytest.mark.usefixtures("no_opencv")
def test_the_pixel_cap_is_checked_from_the_header_before_opencv_decodes() -> None:
    decoder = CvImageDecoder(max_pixels=10**6, min_side=256)
    with pytest.raises(DecodeError, match="pixels, over 1000000"):
        decoder.decode(encoded(photo(1600, 1000)))
    with pytest.raises(DecodeError, match="pixels"):
        decoder.decode(png_header_only(20_000, 20_000))


@pytest.mark.usefixtures("no_opencv")
@pytest.mark.parametrize("kind", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_other_formats_are_decoded_by_pillow(kind: str) -> None:
    data = encoded(photo(300, 200), kind)
    ours = CvImageDecoder(max_pixels=10**7, min_side=64).decode(data)
    assert np.array_equal(pixels(ours), pixels(ImageDecoder(max_pixels=10**7).decode(data)))


@pytest.mark.usefixtures("no_opencv")
def test_cmyk_jpegs_are_decoded_by_pillow() -> None:
    data = encoded(photo(300, 200).convert("CMYK"))
    ours = CvImageDecoder(max_pixels=10**7).decode(data)
    assert np.array_equal(pixels(ours), pixels(ImageDecoder(max_pixels=10**7).decode(data)))


def test_what_opencv_refuses_pillow_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv_decode.cv2, "imdecode", lambda *_: None)
    data = encoded(photo(1024, 768))
    ours = CvImageDecoder(max_pixels=10**7, min_side=256).decode(data)
    assert ours.size == (512, 384)
    assert np.array_equal(
        pixels(ours), pixels(ImageDecoder(max_pixels=10**7, min_side=256).decode(data))
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 12, "corrupt|not an image"),
    ],
)
def test_bad_images(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        CvImageDecoder(max_pixels=10**7).decode(data)


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpegs_are_a_decode_error(progressive: bool) -> None:
    data = encoded(photo(600, 400), progressive=progressive)
    decoder = CvImageDecoder(max_pixels=10**7, min_side=100)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1):
        with pytest.raises(DecodeError, match="corrupt or truncated"):
            decoder.decode(data[:cut])


_SAMPLE = encoded(photo(320, 240), quality=85)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_corrupted_jpegs_decode_or_fail_typed(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_SAMPLE)
    for position, value in flips:
        data[position % len(data)] = value
    try:
        image = CvImageDecoder(max_pixels=10**7, min_side=64).decode(bytes(data))
    except DecodeError:
        return
    assert image.mode == "RGB"


def test_auto_is_pillow_on_few_cores_and_opencv_on_many() -> None:
    assert auto_jpeg_backend(2) == "pil"  # measured: not faster on 2 cores
    assert auto_jpeg_backend(OPENCV_FROM_CORES - 1) == "pil"
    assert auto_jpeg_backend(OPENCV_FROM_CORES) == "opencv"
    assert auto_jpeg_backend(16) == "opencv"  # measured: 1.35x on 16 threads


def test_the_stage_picks_its_decoder_by_backend() -> None:
    fetch = FetchSettings()
    assert type(DecodeImage(min_side=224, backend="pil").decoder(fetch)) is ImageDecoder
    opencv = DecodeImage(min_side=224, max_pixels=1000, backend="opencv").decoder(fetch)
    assert isinstance(opencv, CvImageDecoder)
    assert (opencv.min_side, opencv.max_pixels) == (224, 1000)
    auto = DecodeImage(min_side=224).decoder(fetch)
    assert isinstance(auto, CvImageDecoder) == (auto_jpeg_backend() == "opencv")
    assert DecodeImage(min_side=224, backend="opencv").baseline().backend == "pil"
    with pytest.raises(ConfigError, match="backend must be one of auto, pil, opencv"):
        DecodeImage(backend="turbo")  # type: ignore[arg-type]
