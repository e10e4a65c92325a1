"""The ``clip`` topologies: photos and texts embedded into one space by a local CLIP model.

``clip`` (photos): fetch → decode (reduced-size JPEG decode, never below the processor's
resize) → preprocess (the processor's shortest-side resize and center crop, fused) → embed
(the vision tower's projected features) → normalize. ``clip_text`` (texts): fetch → decode
(UTF-8, stripped, capped) → embed (the text tower's projected features) → normalize. Both
declare the same ``space``, so a text query searches the photos (and a photo the texts), and a
process serving both holds the weights once.

No package ships CLIP weights: :func:`clip_topologies` takes the folder a transformers
``save_pretrained`` wrote (model, tokenizer, ``preprocessor_config.json``). The built-ins
:data:`CLIP` and :data:`CLIP_TEXT` read it from ``STREAMER_CLIP_MODEL_DIR`` when the model
loads, and are served only when named::

    STREAMER_CLIP_MODEL_DIR=/models/clip-vit-b32 \\
    STREAMER_TOPOLOGIES=topologies:DEFAULT_TOPOLOGIES,topologies:CLIP_TOPOLOGIES streamer worker
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from operators import DecodeImage, DecodeText, Fetch, Normalize
from operators.clip import ClipImageEmbed, ClipImagePreprocess, ClipModel, ClipTextEmbed
from streamer.core.errors import ConfigError
from streamer.runner import BatchPolicy, Topology

__all__ = [
    "CLIP",
    "CLIP_MODEL_DIR_ENV",
    "CLIP_TEXT",
    "CLIP_TOPOLOGIES",
    "clip_model_dir",
    "clip_topologies",
]

#: the environment variable naming the built-in topologies' model folder
CLIP_MODEL_DIR_ENV = "STREAMER_CLIP_MODEL_DIR"


def clip_model_dir() -> Path:
    """The folder ``STREAMER_CLIP_MODEL_DIR`` names (read when the model loads)."""
    value = os.environ.get(CLIP_MODEL_DIR_ENV, "").strip()
    if not value:
        raise ConfigError(
            f"the clip topologies need a CLIP model: set {CLIP_MODEL_DIR_ENV} to a folder saved "
            "by transformers (CLIPModel, its tokenizer and image processor: save_pretrained)"
        )
    return Path(value).expanduser()


def clip_topologies(
    folder: Path | Callable[[], Path],
    *,
    name: str = "clip",
    version: str = "clip@1",
    space: str | None = None,
) -> tuple[Topology, Topology]:
    """The photo topology ``name`` and the text topology ``{name}_text`` of the CLIP model in
    ``folder`` (a folder, or a function that finds it when the model loads), model version
    ``version``, in the embedding space ``space`` (default ``clip:{version}``)."""
    model = ClipModel(folder)
    space = space or f"clip:{version}"
    images = Topology(
        name=name,
        media_type="image",
        stages=(
            Fetch(),
            DecodeImage(min_side=model),
            ClipImagePreprocess(model),
            ClipImageEmbed(model, batch=BatchPolicy(max_batch_size=16, max_wait_ms=50)),
            Normalize(),
        ),
        model_version=version,
        metadata_fields=("tenant", "source", "category", "name", "album"),
        space=space,
    )
    texts = Topology(
        name=f"{name}_text",
        media_type="text",
        stages=(
            Fetch(),
            DecodeText(),
            ClipTextEmbed(model, batch=BatchPolicy(max_batch_size=64, max_wait_ms=50)),
            Normalize(),
        ),
        model_version=version,
        metadata_fields=("tenant", "source", "category", "lang", "doc"),
        space=space,
    )
    return images, texts


CLIP, CLIP_TEXT = clip_topologies(clip_model_dir)
CLIP_TOPOLOGIES: tuple[Topology, ...] = (CLIP, CLIP_TEXT)
