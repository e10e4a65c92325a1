"""A tiny, randomly initialised CLIP saved the way transformers saves one: the model, a CLIP
tokenizer over a byte-level BPE vocabulary written here, and the image processor's config.

Nothing is downloaded. Its vectors mean nothing: it tests loading and the pixel and token
paths against transformers' own, never the quality of an embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["IMAGE_SIDE", "MAX_TOKENS", "PROJECTION_DIM", "write_tiny_clip"]

IMAGE_SIDE = 32
PROJECTION_DIM = 16
MAX_TOKENS = 32

# a few merges, so the vocabulary is a real BPE one (words are split, and some joined)
_MERGES = [
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "t</w>"),
    ("i", "n"),
    ("o", "n</w>"),
    ("c", "a"),
    ("ca", "t</w>"),
    ("e", "r</w>"),
    ("a", "n"),
]


def _byte_characters() -> list[str]:
    """GPT-2's byte-to-unicode table (what byte-level BPE vocabularies spell bytes with)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    by_byte = dict(zip(printable, codes, strict=True))
    return [chr(by_byte[b]) for b in range(256)]


def _write_vocabulary(folder: Path) -> None:
    chars = _byte_characters()
    tokens = [*chars, *(c + "</w>" for c in chars)]
    tokens += ["".join(pair) for pair in _MERGES if "".join(pair) not in tokens]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = "\n".join(f"{a} {b}" for a, b in _MERGES)
    (folder / "merges.txt").write_text(f"#version: 0.2\n{merges}\n", encoding="utf-8")


def write_tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny CLIP (hidden 32, 2 layers, 32-pixel images in 8-pixel patches, 16-d
    projection) with its tokenizer and image processor under ``folder``; returns ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    _write_vocabulary(folder)
    # no model_max_length: the embed stage must truncate to the model's positions itself
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.save_pretrained(str(folder))
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIDE}, crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}
    ).save_pretrained(str(folder))
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": MAX_TOKENS,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIDE,
            "patch_size": 8,
        },
        projection_dim=PROJECTION_DIM,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(str(folder))
    return folder
