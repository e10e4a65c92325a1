"""Benchmark inputs: distinct full-size JPEG photos and distinct short texts.

Every item must be new content, or dedupe would skip it and the benchmark would measure the
cache. Photos are the scikit-image samples scaled to 1920x1280 with a per-item tint, shift and
patch, then JPEG-encoded (quality 90), so each file has its own hash and real photo statistics.
Files are kept between runs under the given folder.
"""

from __future__ import annotations

import functools
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from streamer.demo.samples import PHOTOS, sample_photo

__all__ = ["PHOTO_SIZE", "bench_texts", "mixed_texts", "write_bench_photos"]

PHOTO_SIZE = (1920, 1280)

_SUBJECTS = (
    "the engineer", "a small dog", "our team", "the old farmer", "a delivery drone",
    "the city council", "my neighbour", "the orchestra", "a research group", "the bakery",
    "a young pianist", "the river ferry", "a street artist", "the night train", "a chess club",
)  # fmt: skip
_VERBS = (
    "repaired", "painted", "photographed", "announced", "carried", "discovered", "cooked",
    "rebuilt", "measured", "celebrated", "sold", "designed", "visited", "cleaned", "planned",
)  # fmt: skip
_OBJECTS = (
    "a wooden bridge", "the spring festival", "three blue bicycles", "a solar roof",
    "the harbour lights", "a loaf of rye bread", "the museum garden", "an electric bus",
    "a mountain cabin", "the winter market", "a vintage radio", "the football pitch",
)  # fmt: skip
_WHEN = (
    "before sunrise", "last weekend", "during the storm", "after the long meeting",
    "in early autumn", "on a quiet Sunday", "despite the rain", "for the first time",
)  # fmt: skip


def bench_texts(n: int, *, seed: int) -> list[str]:
    """``n`` distinct sentences of 10-16 words (a numbered detail keeps each one unique)."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
        f"{rng.choice(_WHEN)}, item {seed}-{i}."
        for i in range(n)
    ]


def mixed_texts(n: int, *, seed: int) -> list[str]:
    """``n`` distinct texts of mixed length, as messages, captions and paragraphs come: word
    counts drawn log-normally (median about 20, a long tail to 200), from the sentences of
    :func:`bench_texts`."""
    rng = random.Random(seed)
    words = " ".join(bench_texts(64, seed=seed)).split()
    texts = []
    for i in range(n):
        count = min(200, int(rng.lognormvariate(3.0, 0.8))) + 3
        texts.append(f"{i}: " + " ".join(rng.choice(words) for _ in range(count)))
    return texts


@functools.cache
def _base(photo: str) -> Image.Image:
    """A sample photo at :data:`PHOTO_SIZE` (once per process: loading and resizing it costs
    several times what the rest of a render does)."""
    return sample_photo(photo).resize(PHOTO_SIZE, Image.Resampling.BICUBIC)


def _tinted(image: Image.Image, gains: np.ndarray) -> Image.Image:
    """Each channel times its gain, clipped and truncated to ``uint8``: through one lookup table
    per channel (the same bytes as the arithmetic on every pixel, at a fraction of its cost)."""
    levels = np.arange(256, dtype=np.float32)
    tables = [np.clip(levels * gain, 0, 255).astype(np.uint8) for gain in gains]
    bands = [band.point(table.tolist()) for band, table in zip(image.split(), tables, strict=True)]
    return Image.merge("RGB", bands)


def _render(task: tuple[Path, str, int]) -> Path:
    path, photo, index = task
    if path.exists():
        return path
    rng = np.random.default_rng(index)
    image = _tinted(_base(photo), rng.uniform(0.8, 1.2, size=3))
    image = image.rotate(0, translate=tuple(rng.integers(-40, 40, size=2)))
    draw = ImageDraw.Draw(image)
    x, y = int(rng.integers(0, 1700)), int(rng.integers(0, 1100))
    draw.rectangle((x, y, x + 200, y + 160), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    tmp = path.with_suffix(".tmp")
    image.save(tmp, "JPEG", quality=90)
    tmp.replace(path)
    return path


def write_bench_photos(folder: Path, n: int, *, seed: int, workers: int = 2) -> list[Path]:
    """``n`` distinct 1920x1280 JPEGs under ``folder`` (reused when already written)."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [
        (folder / f"photo-{seed}-{i:05d}.jpg", PHOTOS[(seed + i) % len(PHOTOS)], seed * 100_003 + i)
        for i in range(n)
    ]
    missing = [t for t in tasks if not t[0].exists()]
    if missing:
        with ProcessPoolExecutor(max(1, workers)) as pool:
            list(pool.map(_render, missing, chunksize=4))
    return [t[0] for t in tasks]
