"""``streamer bench decode``: Pillow and OpenCV decoding the image topology's JPEGs.

Each backend of :class:`~operators.decode.DecodeImage` decodes the bench photos (1920x1280,
quality 90: :mod:`streamer.bench.media`) at the size EfficientNet-Lite0's transform needs (DCT
scaling) and makes the model's fused crop from them, the work of the decode and preprocess
stages: photos/s on one thread and on ``threads`` threads (the CPU pool's size by default).
Backends and thread counts are taken in turn within each round and each rate is the median
over the rounds, so that a busy spell of a shared machine does not fall on one of them; the
ratio is the median of the two backends' ratio within a round.

Then the crops of each backend are embedded and compared with the model's own preprocessing of
the same photo (Pillow's full-size decode, timm's transform): the lowest cosine over the photos.
The last line of ``--json`` holds ``pil_photos_per_s`` and ``opencv_photos_per_s`` (by thread
count), ``pil_cpu_ms_per_photo`` and ``opencv_cpu_ms_per_photo`` (the process's CPU time per
photo, by thread count: steadier than rates where other work shares the cores),
``opencv_ratio`` (OpenCV's rate over Pillow's), ``cosine_min`` (per backend),
``identical_crops`` (photos whose crops are equal byte for byte) and ``auto`` (the backend
``DecodeImage(backend="auto")`` picks).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from rich.console import Console
from rich.table import Table

from operators.decode import DecodeImage, auto_jpeg_backend
from operators.image_embed import TimmEmbed
from operators.preprocess import TimmPreprocess, timm_transform
from streamer.bench.media import PHOTO_SIZE, write_bench_photos
from streamer.config.cpus import available_cores
from streamer.config.settings import Settings
from streamer.runner.context import Context
from topologies.image import EFFNET_LITE0

__all__ = ["BACKENDS", "Run", "run_decode_bench"]

BACKENDS: tuple[Literal["pil", "opencv"], ...] = ("pil", "opencv")

Prepare = Callable[[bytes], torch.Tensor]


def _preparers(context: Context) -> dict[str, Prepare]:
    """Per backend: JPEG bytes to the model's ``uint8`` crop, as the two stages make it."""
    crop = TimmPreprocess(EFFNET_LITE0).bind(context).fn
    preparers: dict[str, Prepare] = {}
    for backend in BACKENDS:
        stage = DecodeImage(min_side=EFFNET_LITE0, backend=backend)
        preparers[backend] = _chain(stage.decoder(context.fetch).decode, crop)
    return preparers


def _chain(
    decode: Callable[[bytes], Image.Image], crop: Callable[[Image.Image], torch.Tensor]
) -> Prepare:
    def prepare(data: bytes) -> torch.Tensor:
        return crop(decode(data))

    return prepare


@dataclass(frozen=True, slots=True)
class Run:
    """One backend's pass over the photos: photos/s, and the CPU time a photo took (of the
    whole process: every thread's), which another process busy on the machine barely moves."""

    photos_per_s: float
    cpu_ms_per_photo: float


def _run(prepare: Prepare, photos: Sequence[bytes], pool: ThreadPoolExecutor) -> Run:
    began, cpu = time.perf_counter(), time.process_time()
    for _ in pool.map(prepare, photos):
        pass
    spent, spent_cpu = time.perf_counter() - began, time.process_time() - cpu
    return Run(len(photos) / spent, spent_cpu * 1000 / len(photos))


def _measure(
    preparers: dict[str, Prepare],
    photos: Sequence[bytes],
    threads: Sequence[int],
    rounds: int,
    console: Console,
) -> dict[str, dict[int, list[Run]]]:
    """Each backend's runs at each thread count, one per round."""
    pools = {n: ThreadPoolExecutor(n, thread_name_prefix=f"decode-{n}") for n in threads}
    seen: dict[str, dict[int, list[Run]]] = {b: {n: [] for n in threads} for b in preparers}
    try:
        for prepare in preparers.values():  # first calls (imports, page cache): no one's cost
            _run(prepare, photos[:4], pools[threads[0]])
        for turn in range(1, rounds + 1):
            # alternate which backend goes first: a trend over the run falls on both alike
            order = list(preparers) if turn % 2 else list(reversed(preparers))
            for n, pool in pools.items():
                for backend in order:
                    run = _run(preparers[backend], photos, pool)
                    seen[backend][n].append(run)
                    console.print(
                        f"round {turn}/{rounds} {backend}, {n} threads: "
                        f"{run.photos_per_s:.0f}/s, {run.cpu_ms_per_photo:.2f} CPU ms a photo"
                    )
    finally:
        for pool in pools.values():
            pool.shutdown()
    return seen


def _cosines(
    preparers: dict[str, Prepare], photos: Sequence[bytes]
) -> tuple[dict[str, float], int]:
    """Per backend, the lowest cosine between its embedding of a photo and the embedding of
    timm's own preprocessing (full-size decode, timm's transform); and how many photos the
    backends crop to the same bytes."""
    model = TimmEmbed(EFFNET_LITE0).load("cpu", "fp32")
    transform = timm_transform(EFFNET_LITE0)
    reference = model([transform(_upright(Image.open(BytesIO(p)))) for p in photos])
    crops = {b: [prepare(p) for p in photos] for b, prepare in preparers.items()}
    lowest = {b: _lowest_cosine(model(c), reference) for b, c in crops.items()}
    identical = sum(1 for crops_of in zip(*crops.values(), strict=True) if _all_equal(crops_of))
    return lowest, identical


def _upright(image: Image.Image) -> Image.Image:
    return (ImageOps.exif_transpose(image) or image).convert("RGB")


def _lowest_cosine(ours: np.ndarray, theirs: np.ndarray) -> float:
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    return float(np.min(np.sum(ours * theirs, axis=1) / norms))


def _all_equal(tensors: Sequence[torch.Tensor]) -> bool:
    return all(torch.equal(tensors[0], t) for t in tensors[1:])


def run_decode_bench(
    base: Settings,
    *,
    images: int = 48,
    threads: int | None = None,
    rounds: int = 5,
    media_dir: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Measure both backends on ``images`` bench photos (see the module doc); print a table
    and return the figures."""
    console = Console(stderr=quiet)
    started_at = time.perf_counter()
    many = threads or available_cores()
    counts = sorted({1, many})
    media = media_dir or base.stack.state_dir / "bench-media"
    console.print(f"writing {images} distinct {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEGs")
    photos = [
        p.read_bytes() for p in write_bench_photos(media, images, seed=4, workers=available_cores())
    ]
    preparers = _preparers(Context(base.fetch, device="cpu"))
    seen = _measure(preparers, photos, counts, rounds, console)
    # the ratio within each round, of runs next to each other in time: steadier than the
    # ratio of the medians on a shared machine
    ratios = {
        n: statistics.median(
            o.photos_per_s / p.photos_per_s
            for o, p in zip(seen["opencv"][n], seen["pil"][n], strict=True)
        )
        for n in counts
    }
    console.print("embedding the crops and timm's own preprocessing of the photos")
    lowest, identical = _cosines(preparers, photos)
    figures: dict[str, Any] = {
        "images": images,
        "rounds": rounds,
        "photo_size": list(PHOTO_SIZE),
        "threads": counts,
        **{
            f"{b}_photos_per_s": {
                str(n): round(statistics.median(r.photos_per_s for r in runs), 1)
                for n, runs in by_n.items()
            }
            for b, by_n in seen.items()
        },
        **{
            f"{b}_cpu_ms_per_photo": {
                str(n): round(statistics.median(r.cpu_ms_per_photo for r in runs), 2)
                for n, runs in by_n.items()
            }
            for b, by_n in seen.items()
        },
        "opencv_ratio": {str(n): round(r, 3) for n, r in ratios.items()},
        "cosine_min": {b: round(c, 5) for b, c in lowest.items()},
        "identical_crops": identical,
        "auto": auto_jpeg_backend(),
        "seconds": round(time.perf_counter() - started_at, 1),
    }
    _print(console, figures)
    return figures


def _print(console: Console, f: dict[str, Any]) -> None:
    counts = [str(n) for n in f["threads"]]
    width, height = f["photo_size"]
    table = Table(
        title=f"photos/s, decode + the model's crop ({f['images']} photos {width}x{height}, "
        f"median of {f['rounds']})"
    )
    table.add_column("backend")
    for n in counts:
        table.add_column(f"{n} thread{'s' if n != '1' else ''}", justify="right")
    table.add_column("CPU ms/photo", justify="right")
    table.add_column("min cosine to timm", justify="right")
    for backend in BACKENDS:
        rates = f[f"{backend}_photos_per_s"]
        cpu_ms = f[f"{backend}_cpu_ms_per_photo"]["1"]
        cosine = f["cosine_min"][backend]
        table.add_row(
            backend, *(f"{rates[n]:.0f}" for n in counts), f"{cpu_ms:.2f}", f"{cosine:.4f}"
        )
    table.add_row("opencv / pil", *(f"{f['opencv_ratio'][n]:.2f}x" for n in counts), "", "")
    console.print(table)
    console.print(
        f"crops equal byte for byte: {f['identical_crops']}/{f['images']}; "
        f'backend="auto" decodes JPEGs with {f["auto"]}; {f["seconds"]} s'
    )
