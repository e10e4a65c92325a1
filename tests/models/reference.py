"""Reference embeddings computed the libraries' own way, independent of streamer's operators."""

from __future__ import annotations

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from topologies.image import efficientnet_lite0_weights
from topologies.text import minilm_l6_dir


def timm_reference(image: Image.Image) -> np.ndarray:
    """timm's resolved transform on the full-size image, timm's pooled pre-logits features."""
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), state.values(), strict=True)))
    transform = create_transform(**resolve_data_config({}, model=model))
    with torch.inference_mode():
        x = transform(image.convert("RGB")).unsqueeze(0)
        features = model.forward_head(model.forward_features(x), pre_logits=True)[0].numpy()
    return features / np.linalg.norm(features)


def sentence_transformers_reference(texts: list[str]) -> np.ndarray:
    """The packaged model loaded by sentence-transformers, its own pooling and normalisation."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_l6_dir()), device="cpu")
    return np.asarray(model.encode(texts, normalize_embeddings=True))
