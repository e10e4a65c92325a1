"""Text to an image query through the image model's ImageNet classes, on the real models: a
text matches class names with the text model, and the matching classes' rows find the photo of
what the text says among the sample photos."""

from __future__ import annotations

import io

import numpy as np
import pytest

from operators.imagenet import imagenet_classes
from streamer.demo.samples import PHOTOS, sample_photo
from streamer.runner.plan import Plan
from streamer.runner.runner import Runner
from streamer.trainer import ClassBridge
from tests.models.conftest import embed
from topologies.image import EFFNET_LITE0


@pytest.fixture(scope="module")
def bridge(runner: Runner, text_plan: Plan) -> ClassBridge:
    names, weights = imagenet_classes(EFFNET_LITE0)
    return ClassBridge.build(names, weights, lambda texts: embed(runner, text_plan, texts))


@pytest.fixture(scope="module")
def photos(runner: Runner, image_plan: Plan) -> np.ndarray:
    def jpeg(name: str) -> bytes:
        out = io.BytesIO()
        sample_photo(name).save(out, "JPEG", quality=90)
        return out.getvalue()

    return embed(runner, image_plan, [jpeg(name) for name in PHOTOS])


def test_the_classes_are_imagenet_s_in_the_image_space(image_plan: Plan) -> None:
    names, weights = imagenet_classes(EFFNET_LITE0)
    assert len(names) == 1000 and weights.shape == (1000, image_plan.dim)
    assert names[207] == "golden retriever"
    assert np.isfinite(weights).all()


@pytest.mark.parametrize(
    ("text", "photo", "class_word"),
    [
        ("a cat", "chelsea", "cat"),
        ("a cup of coffee", "coffee", "coffee"),
        ("a rocket launch", "rocket", "missile"),
        ("a clock", "clock", "clock"),
        ("a camera", "camera", "camera"),
    ],
)
def test_a_text_finds_the_photo_of_what_it_says(
    bridge: ClassBridge,
    photos: np.ndarray,
    runner: Runner,
    text_plan: Plan,
    text: str,
    photo: str,
    class_word: str,
) -> None:
    (vector,) = embed(runner, text_plan, [text])
    start = bridge.start(vector)
    assert any(class_word in name for name, _ in start.classes), start.classes
    assert sum(weight for _, weight in start.classes) == pytest.approx(1.0, abs=1e-3)
    ranked = [PHOTOS[i] for i in np.argsort(-(photos @ start.vector))]
    assert ranked[0] == photo, (text, ranked[:3], start.classes)
