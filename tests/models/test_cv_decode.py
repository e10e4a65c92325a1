"""The real EfficientNet-Lite0 embeds photos decoded by OpenCV (``DecodeImage(backend=
"opencv")``) as it embeds those of the model's own preprocessing: Pillow's full-size decode and
timm's transform."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from operators.decode import DecodeImage
from streamer.bench.media import write_bench_photos
from streamer.cli.bench import bench
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from tests.models.conftest import CPU, embed
from tests.models.reference import timm_reference
from topologies import IMAGE
from topologies.image import EFFNET_LITE0


def encoded(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def opencv_plan() -> Plan:
    fetch, decode, *rest = IMAGE.stages
    assert isinstance(decode, DecodeImage)
    opencv = DecodeImage(min_side=EFFNET_LITE0, backend="opencv")
    return bind(replace(IMAGE, stages=(fetch, opencv, *rest)), None, CPU)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Bench photos (1920x1280, quality 90), and one in each other shape that decodes reduced."""
    folder: Path = tmp_path_factory.mktemp("photos")
    paths = write_bench_photos(folder, 3, seed=11, workers=1)
    image = Image.open(paths[2]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as phones do
    return {
        "landscape 1920x1280": paths[0].read_bytes(),
        "landscape 1920x1280 b": paths[1].read_bytes(),
        "portrait 1280x1920": encoded(image.transpose(Image.Transpose.ROTATE_90), quality=90),
        "4000x3000": encoded(image.resize((4000, 3000), Image.Resampling.BICUBIC), quality=90),
        "exif-rotated": encoded(image, exif=exif, quality=90),
    }


def test_opencv_decoded_photos_embed_as_the_models_own_preprocessing(
    photos: dict[str, bytes], opencv_plan: Plan, image_plan: Plan, runner: Runner
) -> None:
    ours = embed(runner, opencv_plan, list(photos.values()))
    pil = embed(runner, image_plan, list(photos.values()))
    for (name, data), vector, pil_vector in zip(photos.items(), ours, pil, strict=True):
        # timm takes the pixels as stored: the upright photo is what both paths embed
        reference = timm_reference(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        # measured 0.991 to 0.999: the reduced-size decode (DCT scaling), as with Pillow's
        assert float(vector @ reference) >= 0.99, name
        # the same pixels as Pillow's reduced decode
        assert float(vector @ pil_vector) > 0.99999, name


def test_the_bench_measures_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_STACK_STATE_DIR", str(tmp_path))
    done = CliRunner().invoke(
        bench, ["decode", "--images", "4", "--rounds", "1", "--threads", "2", "--json"]
    )
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["threads"] == [1, 2]
    for backend in ("pil", "opencv"):
        assert set(figures[f"{backend}_photos_per_s"]) == {"1", "2"}
        assert figures["cosine_min"][backend] >= 0.99
    assert figures["identical_crops"] == 4
    assert len(list((tmp_path / "bench-media").glob("*.jpg"))) == 4
