"""``streamer bench video``: videos through the ``video`` topology in this process, and where
the time goes.

It writes ``videos`` clips with opencv (three of the sample photos, 2 s each, 480x360 at 8
fps: 7 frames kept each at the default one a second), runs them through the ``video`` plan
with the runner every path uses (as ``streamer run`` does), and prints videos/s, frames/s and
the seconds each stage took, beside the image model alone on as many frames, at the photo
stage's batch size as a worker runs it (calibrated, from the calibration cache; its ceiling
here): the ratio says how close the video path comes to it.
The figures are medians of ``rounds`` runs. The last line of ``--json`` holds
``video_videos_per_s``, ``video_frames_per_s``, ``video_model_frames_per_s`` and
``video_ratio``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from operators.fetch import path_to_uri
from operators.video_embed import FramePooler
from streamer.config.cpus import available_cores
from streamer.config.settings import Settings
from streamer.demo.samples import PHOTOS, sample_photo
from streamer.demo.video import write_video
from streamer.models.loading import plans_for
from streamer.runner.operator import Source
from streamer.runner.runner import Runner

__all__ = ["run_video_bench"]


def _clips(folder: Path, count: int) -> list[Source]:
    rng = random.Random(0)
    photos = {name: sample_photo(name) for name in PHOTOS}
    sources = []
    for i in range(count):
        scenes = [photos[name] for name in rng.sample(PHOTOS, 3)]
        path = write_video(folder / f"clip-{i:03d}.mp4", scenes)
        sources.append(Source(uri=path_to_uri(path)))
    return sources


def run_video_bench(
    settings: Settings, *, videos: int = 12, rounds: int = 3, console: Console | None = None
) -> dict[str, Any]:
    from topologies import IMAGE, VIDEO

    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="streamer-video-bench-") as tmp:
        folder = Path(tmp)
        console.print(f"writing {videos} clips with opencv …")
        sources = _clips(folder, videos)
        fetch = settings.fetch.model_copy(update={"media_roots": (folder.resolve(),)})
        plans = plans_for(settings.model_copy(update={"fetch": fetch}), measure=False)
        plans.get(IMAGE)  # as in a worker: frames go to the model at the photos' batch size
        plan = plans.get(VIDEO)
        pooler = plan.models[0].model.model if plan.models[0].model is not None else None
        assert isinstance(pooler, FramePooler)
        runner = Runner.with_threads(available_cores(), 1, name="bench-video")
        try:
            asyncio.run(runner.run(plan, sources[:1]))  # warm: threads, allocator
            runs: list[tuple[float, int, dict[str, float]]] = []
            for _ in range(rounds):
                timings: dict[str, float] = {}
                before = pooler.embedder.calls
                started = time.perf_counter()
                outs = asyncio.run(runner.run(plan, sources, timings=timings))
                seconds = time.perf_counter() - started
                failed = [o for o in outs if not hasattr(o, "shape")]
                if failed:
                    raise RuntimeError(f"bench clips failed: {failed[:3]}")
                runs.append((seconds, pooler.embedder.calls - before, timings))
        finally:
            runner.close()
        frames = runs[0][1]
        model_s = _model_only(pooler, frames, rounds)
    seconds = statistics.median(r[0] for r in runs)
    stages = {
        label: round(statistics.median(r[2].get(label, 0.0) for r in runs), 3)
        for label in runs[0][2]
    }
    figures = {
        "video_videos": videos,
        "video_frames": frames,
        "video_device": plan.device,
        "video_videos_per_s": round(videos / seconds, 2),
        "video_frames_per_s": round(frames / seconds, 1),
        "video_model_frames_per_s": round(frames / model_s, 1),
        "video_ratio": round(model_s / seconds, 3),
        "video_stage_seconds": stages,
    }
    table = Table(title=f"video topology on {plan.device}: {videos} clips, {frames} frames")
    for column in ("measure", "figure"):
        table.add_column(column)
    table.add_row("end to end", f"{figures['video_videos_per_s']} videos/s, "
                  f"{figures['video_frames_per_s']} frames/s")  # fmt: skip
    table.add_row(
        "image model alone, same frames", f"{figures['video_model_frames_per_s']} frames/s"
    )
    table.add_row("end to end / model alone", f"{figures['video_ratio']:.2f}x")
    for label, spent in stages.items():
        table.add_row(f"stage {label} (summed over chunks)", f"{spent:.2f} s")
    console.print(table)
    return figures


def _model_only(pooler: FramePooler, frames: int, rounds: int) -> float:
    """Median seconds the image model takes for ``frames`` crops at the pooler's call size."""
    size = pooler.frames_per_call
    crops = pooler.embedder.sample_inputs(size)
    pooler.embedder(crops)  # warm
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        left = frames
        while left > 0:
            pooler.embedder(crops[: min(size, left)])
            left -= size
        times.append(time.perf_counter() - started)
    return statistics.median(times)
