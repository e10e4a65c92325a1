import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from timm.data import ImageNetInfo

from operators.image_embed import TimmImageEmbedder
from operators.preprocess import TimmPreprocess
from operators.timm_model import load_state_dict_by_order, load_timm_model
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from tests.models.conftest import CPU, embed, prepare
from tests.models.reference import timm_reference
from topologies import IMAGE
from topologies.image import EFFNET_LITE0, efficientnet_lite0_weights

CAT_CLASSES = {
    "tabby, tabby cat",
    "tiger cat",
    "Persian cat",
    "Siamese cat, Siamese",
    "Egyptian cat",
}


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg_bytes(image: Image.Image, size: tuple[int, int] | None = None) -> bytes:
    if size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_packaged_weights_load_with_every_shape_checked() -> None:
    model = load_timm_model("efficientnet_lite0", efficientnet_lite0_weights(), by_order=True)
    state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    for loaded, packaged in zip(model.state_dict().values(), state.values(), strict=True):
        assert torch.equal(loaded, packaged)


def test_a_wrong_architecture_fails_loudly() -> None:
    import timm

    wrong = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=10)
    state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state_dict_by_order(wrong, state)
    deeper = timm.create_model("efficientnet_lite1", pretrained=False)
    with pytest.raises(ValueError, match="296 tensors, model expects"):
        load_state_dict_by_order(deeper, state)
    with pytest.raises(ValueError, match="tensors"):
        load_state_dict_by_order(wrong, dict(list(state.items())[:-1]))


def test_the_cat_photo_is_a_cat(image_plan: Plan, runner: Runner) -> None:
    crops = prepare(runner, image_plan, [jpeg_bytes(photo("chelsea"))])
    model = image_plan.models[0].bound.model  # type: ignore[union-attr]
    top5 = model.classify(crops)[0].topk(5).indices.tolist()
    names = {ImageNetInfo().index_to_description(i) for i in top5}
    assert names & CAT_CLASSES, names


def test_embedding_is_the_unit_pooled_penultimate_layer(image_plan: Plan, runner: Runner) -> None:
    vectors = embed(runner, image_plan, [jpeg_bytes(photo("coffee"))])
    assert vectors.shape == (1, 1280)
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5


def test_preprocessing_matches_timm_even_with_reduced_size_decode(
    image_plan: Plan, runner: Runner
) -> None:
    big = jpeg_bytes(photo("astronaut"), size=(1920, 1280))
    (ours,) = embed(runner, image_plan, [big])
    reference = timm_reference(Image.open(io.BytesIO(big)))
    assert float(ours @ reference) >= 0.99


def test_fused_preprocessing_gives_the_embedding_of_timms_transform(image_plan: Plan) -> None:
    model = image_plan.models[0].bound.model  # type: ignore[union-attr]
    fused = TimmPreprocess(EFFNET_LITE0).bind(CPU).fn
    plain = TimmPreprocess(EFFNET_LITE0, fused=False).bind(CPU).fn
    for name, size in [("astronaut", (480, 320)), ("coffee", (376, 990)), ("rocket", (1001, 777))]:
        image = photo(name).resize(size, Image.Resampling.BICUBIC)
        crop = fused(image)
        assert crop.dtype == torch.uint8  # normalised in the batch, on the model's device
        ours, theirs = model([crop])[0], model([plain(image)])[0]
        cosine = float(ours @ theirs) / float(np.linalg.norm(ours) * np.linalg.norm(theirs))
        assert cosine >= 0.9995, (name, size)  # measured >= 0.9997


def test_an_earlier_layer_is_a_version_of_its_own(runner: Runner) -> None:
    plan = bind(IMAGE, "effnet-lite0-b5@2", CPU)
    assert plan.dim == 192
    assert embed(runner, plan, [jpeg_bytes(photo("rocket"))]).shape == (1, 192)
    model = load_timm_model("efficientnet_lite0", efficientnet_lite0_weights(), by_order=True)
    with pytest.raises(ValueError, match="no module"):
        TimmImageEmbedder(model, EFFNET_LITE0.data_config(), layer="blocks.99")
