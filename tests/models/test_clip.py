"""The ``clip`` topologies on a tiny, randomly initialised CLIP saved by transformers: loading,
the pixel and token paths against transformers' own, one space, one model per process.

The model's vectors mean nothing; these tests never judge their quality."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from operators.clip import (
    ClipImageEmbedder,
    ClipImagePreprocess,
    ClipModel,
    ClipTextEmbedder,
)
from streamer.bench.media import mixed_texts
from streamer.config.settings import FetchSettings
from streamer.core.errors import ConfigError
from streamer.demo.samples import sample_photo
from streamer.query.service import embedding_topology
from streamer.runner.context import Context
from streamer.runner.operator import ModelOperator
from streamer.runner.plan import Plan, bind
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.served import load_topologies
from tests.models.conftest import embed
from tests.models.test_local_run import streamer_run
from tests.models.tiny_clip import IMAGE_SIDE, MAX_TOKENS, PROJECTION_DIM, write_tiny_clip
from topologies import CLIP, CLIP_TEXT, CLIP_TOPOLOGIES, DEFAULT_TOPOLOGIES
from topologies.clip import clip_topologies
from topologies.text import minilm_l6_dir

SENTENCES = [
    "A cup of coffee on a wooden table.",
    "The cat sleeps.",
    # longer than the model's 32 positions: truncated, as transformers truncates it
    "Rockets launch at dawn while the crowd watches from the beach " * 4,
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def context() -> Context:
    return Context(FetchSettings(), device="cpu")


@pytest.fixture(scope="module")
def plans(folder: Path, context: Context) -> tuple[Plan, Plan]:
    images, texts = clip_topologies(folder)
    return bind(images, None, context), bind(texts, None, context)


def jpeg(image: Image.Image, size: tuple[int, int] | None = None) -> bytes:
    if size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def quoted(path: Path) -> str:
    """A folder as an error message quotes it, as a pattern."""
    return re.escape(repr(str(path)))


def loaded(plan: Plan) -> object:
    """The loaded model of a plan's model stage."""
    (stage,) = plan.models
    assert stage.model is not None
    return stage.model.model


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def transformers_images(folder: Path, photos: list[bytes]) -> np.ndarray:
    """transformers' own image processor on the full-size photos, its image features."""
    from transformers import CLIPImageProcessor, CLIPModel

    processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
    model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in photos]
    with torch.inference_mode():
        output = model.get_image_features(**processor(images=images, return_tensors="pt"))
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    return unit(features.numpy())


def transformers_texts(folder: Path, texts: list[str]) -> np.ndarray:
    """transformers' CLIP tokenizer (truncated to the model's positions), its text features."""
    from transformers import CLIPModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )
    with torch.inference_mode():
        output = model.get_text_features(**encoded)
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    return unit(features.numpy())


def test_photos_embed_as_transformers_embeds_them(
    folder: Path, plans: tuple[Plan, Plan], runner: Runner
) -> None:
    image_plan, _ = plans
    assert image_plan.dim == PROJECTION_DIM
    photos = [
        jpeg(sample_photo("chelsea")),
        jpeg(sample_photo("astronaut"), size=(1920, 1280)),  # decoded at reduced size
        jpeg(sample_photo("coffee"), size=(376, 990)),  # portrait
        jpeg(sample_photo("rocket"), size=(1001, 777)),
    ]
    ours = embed(runner, image_plan, photos)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = (ours * transformers_images(folder, photos)).sum(axis=1)
    assert (cosines >= 0.99).all(), cosines  # measured >= 0.9996


def test_texts_embed_as_transformers_embeds_them(
    folder: Path, plans: tuple[Plan, Plan], runner: Runner
) -> None:
    _, text_plan = plans
    assert text_plan.dim == PROJECTION_DIM
    ours = embed(runner, text_plan, SENTENCES)
    cosines = (ours * transformers_texts(folder, SENTENCES)).sum(axis=1)
    assert (cosines >= 0.999).all(), cosines


def test_texts_cut_by_length_embed_as_in_arrival_order(
    plans: tuple[Plan, Plan], runner: Runner
) -> None:
    _, text_plan = plans
    model = loaded(text_plan)
    assert isinstance(model, ClipTextEmbedder)
    assert model.lengths(SENTENCES)[-1] == MAX_TOKENS  # truncated, as a call truncates it
    texts = mixed_texts(24, seed=3)
    arrival = Runner(runner.cpu_pool, runner.model_pool, by_length=False)
    cosines = (embed(runner, text_plan, texts) * embed(arrival, text_plan, texts)).sum(axis=1)
    assert (cosines > 0.9999).all(), cosines


def test_the_processor_configuration_is_followed(
    folder: Path, tmp_path: Path, runner: Runner
) -> None:
    from transformers import CLIPImageProcessor

    other = tmp_path / "clip"
    shutil.copytree(folder, other)
    CLIPImageProcessor(
        size={"shortest_edge": 40},
        crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        resample=Image.Resampling.BILINEAR,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
    ).save_pretrained(str(other))
    config = ClipModel(other).image_config()
    assert (config.resize_side, config.height, config.width) == (40, IMAGE_SIDE, IMAGE_SIDE)
    assert config.resample == Image.Resampling.BILINEAR
    assert (config.mean, config.std) == ((0.5,) * 3, (0.25,) * 3)
    assert ClipModel(other).resize_side() == 40  # what DecodeImage(min_side=...) asks

    preprocess = ClipImagePreprocess(ClipModel(other)).bind(Context(FetchSettings())).fn
    crop = preprocess(sample_photo("coffee"))
    assert crop.dtype == torch.uint8 and crop.shape == (3, IMAGE_SIDE, IMAGE_SIDE)

    images, _ = clip_topologies(other)
    photos = [jpeg(sample_photo("chelsea")), jpeg(sample_photo("rocket"), size=(640, 900))]
    ours = embed(runner, bind(images, None, Context(FetchSettings(), device="cpu")), photos)
    cosines = (ours * transformers_images(other, photos)).sum(axis=1)
    assert (cosines >= 0.99).all(), cosines


def test_photos_and_texts_share_one_space() -> None:
    assert CLIP.space == CLIP_TEXT.space == "clip:clip@1"
    assert (CLIP.name, CLIP.media_type) == ("clip", "image")
    assert (CLIP_TEXT.name, CLIP_TEXT.media_type) == ("clip_text", "text")
    served = (*DEFAULT_TOPOLOGIES, *CLIP_TOPOLOGIES)
    # a text query on the photos is embedded by clip_text, a photo query on the texts by clip
    assert embedding_topology(served, CLIP, "clip@1", "text") == (CLIP_TEXT, "clip@1")
    assert embedding_topology(served, CLIP_TEXT, "clip@1", "image") == (CLIP, "clip@1")
    assert CLIP not in DEFAULT_TOPOLOGIES and CLIP_TEXT not in DEFAULT_TOPOLOGIES
    named = load_topologies(["topologies:DEFAULT_TOPOLOGIES", "topologies:CLIP_TOPOLOGIES"])
    assert named == (*DEFAULT_TOPOLOGIES, CLIP, CLIP_TEXT)
    images, texts = clip_topologies(Path("/nowhere"), name="photos", version="vit-b32@2")
    assert (images.name, texts.name) == ("photos", "photos_text")
    assert images.space == texts.space == "clip:vit-b32@2"


def test_photo_and_text_stages_share_one_loaded_model(
    folder: Path, plans: tuple[Plan, Plan], context: Context
) -> None:
    image_model = loaded(plans[0])
    text_model = loaded(plans[1])
    assert isinstance(image_model, ClipImageEmbedder) and isinstance(text_model, ClipTextEmbedder)
    assert image_model.clip is text_model.clip  # one CLIPModel in this context
    again, _ = clip_topologies(folder)
    same = loaded(bind(again, None, context))
    own = loaded(bind(again, None, Context(FetchSettings(), device="cpu")))
    assert isinstance(same, ClipImageEmbedder) and isinstance(own, ClipImageEmbedder)
    assert same.clip is image_model.clip  # an equal declaration in this context: the same weights
    assert own.clip is not image_model.clip  # another context loads its own
    # what calibration and warm-up feed the stages
    assert image_model(image_model.sample_inputs(3)).shape == (3, PROJECTION_DIM)
    assert text_model(text_model.sample_inputs(5)).shape == (5, PROJECTION_DIM)


def test_the_builtins_find_the_model_when_it_loads(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMER_CLIP_MODEL_DIR", raising=False)
    with pytest.raises(ConfigError, match="set STREAMER_CLIP_MODEL_DIR"):
        Plans(Context(FetchSettings(), device="cpu")).get(CLIP)
    monkeypatch.setenv("STREAMER_CLIP_MODEL_DIR", str(folder))
    plans = Plans(Context(FetchSettings(), device="cpu"))
    assert plans.get(CLIP).dim == plans.get(CLIP_TEXT).dim == PROJECTION_DIM
    # calibration's cache tells models apart by the folder, not by the function that finds it
    for topology in CLIP_TOPOLOGIES:
        (stage,) = [s for s in topology.stages_for() if isinstance(s, ModelOperator)]
        assert repr(str(folder)) in stage.describe()


def test_a_missing_or_foreign_folder_is_named(folder: Path, tmp_path: Path) -> None:
    cpu = Context(FetchSettings(), device="cpu")
    missing = tmp_path / "no-such-model"
    images, texts = clip_topologies(missing)
    for topology in (images, texts):
        with pytest.raises(
            ConfigError, match=f"CLIP model folder {quoted(missing)} does not exist"
        ):
            bind(topology, None, cpu)
    bert = minilm_l6_dir()
    with pytest.raises(ConfigError, match=f"{quoted(bert)} is not a CLIP model folder.*'bert'"):
        bind(clip_topologies(bert)[1], None, cpu)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        ConfigError, match=f"{quoted(empty)} is not a CLIP model folder: no readable"
    ):
        bind(clip_topologies(empty)[0], None, cpu)
    unprocessed = tmp_path / "no-processor"
    shutil.copytree(folder, unprocessed)
    (unprocessed / "preprocessor_config.json").unlink()
    with pytest.raises(
        ConfigError, match=f"CLIP image processor in {quoted(unprocessed)} cannot be"
    ):
        bind(clip_topologies(unprocessed)[0], None, cpu)


def test_streamer_run_embeds_a_photo_and_a_text(folder: Path, tmp_path: Path) -> None:
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(jpeg(sample_photo("chelsea")))
    code, lines, stderr = streamer_run(
        tmp_path, str(photo), "--text", "a cat on a sofa", "--vectors",
        STREAMER_TOPOLOGIES="topologies:CLIP_TOPOLOGIES", STREAMER_CLIP_MODEL_DIR=str(folder),
    )  # fmt: skip
    *rows, summary = lines
    assert code == 0, stderr
    assert (summary["ok"], summary["errors"]) == (2, 0)
    assert summary["dims"] == {"clip": PROJECTION_DIM, "clip_text": PROJECTION_DIM}
    assert sorted(r["topology"] for r in rows) == ["clip", "clip_text"]
    for row in rows:
        assert abs(float(np.linalg.norm(row["vector"])) - 1) < 1e-5
