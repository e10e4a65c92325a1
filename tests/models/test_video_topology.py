"""The video topology on the real image model: frames embedded exactly as photos are, pooled
into one unit vector; a photo finds the video of its scene, and a video the photos of its."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from operators.video import VideoDecoder
from operators.video_embed import FramePooler
from streamer.config.settings import FetchSettings, VideoSettings
from streamer.demo.samples import sample_photo
from streamer.demo.video import write_video
from streamer.runner.context import Context
from streamer.runner.operator import Part
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from topologies import IMAGE, VIDEO
from topologies.image import EFFNET_LITE0

SCENES = ("chelsea", "coffee", "rocket", "astronaut")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One video of each scene, and one of two scenes."""
    folder = tmp_path_factory.mktemp("clips")
    made = {n: write_video(folder / f"{n}.mp4", [sample_photo(n)]) for n in SCENES}
    made["chelsea+rocket"] = write_video(
        folder / "two.mp4", [sample_photo("chelsea"), sample_photo("rocket")]
    )
    return {name: path.read_bytes() for name, path in made.items()}


@pytest.fixture(scope="module")
def plans() -> tuple[Plan, Plan]:
    context = Context(FetchSettings(), device="cpu")  # one context: one model for both
    return bind(IMAGE, None, context), bind(VIDEO, None, context)


def run(runner: Runner, plan: Plan, contents: list[bytes], first: int = 1) -> np.ndarray:
    outs = asyncio.run(runner.run(plan, contents, first=first))
    assert all(isinstance(o, np.ndarray) for o in outs), outs
    return np.stack(outs)


def test_photos_and_videos_share_one_model(plans: tuple[Plan, Plan]) -> None:
    image, video = plans
    pooler = video.stages[3].bound.model
    assert isinstance(pooler, FramePooler)
    assert pooler.embedder is image.stages[3].bound.model
    assert video.dim == image.dim == 1280


def test_a_video_is_the_unit_mean_of_its_frames_embedded_as_photos(
    plans: tuple[Plan, Plan], runner: Runner, clips: dict[str, bytes]
) -> None:
    image, video = plans
    (vector,) = run(runner, video, [clips["chelsea+rocket"]])
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    decoder = VideoDecoder(VideoSettings(), min_side=EFFNET_LITE0.resize_side())
    frames = decoder.decode(clips["chelsea+rocket"])
    photos = [Image.fromarray(f) for f in frames.frames]
    each = run(runner, image, photos, first=2)  # preprocess, embed, normalize: a photo's path
    expected = each.mean(axis=0)
    expected /= np.linalg.norm(expected)
    assert float(vector @ expected) >= 0.9999


def test_frames_packed_into_calls_of_any_size_give_the_same_vectors(
    plans: tuple[Plan, Plan], runner: Runner, clips: dict[str, bytes]
) -> None:
    _, video = plans
    pooler = video.stages[3].bound.model
    assert isinstance(pooler, FramePooler)
    frames = asyncio.run(runner.run(video, [clips["coffee"], clips["rocket"]], first=1, last=3))
    whole = pooler(frames)
    odd = FramePooler(pooler.embedder, frames_per_call=3)(frames)
    for a, b in zip(whole, odd, strict=True):
        assert np.allclose(a, b, atol=1e-4)


def test_a_photo_finds_its_video_and_a_video_its_photos(
    plans: tuple[Plan, Plan], runner: Runner, clips: dict[str, bytes]
) -> None:
    image, video = plans
    names = list(clips)
    videos = run(runner, video, [clips[n] for n in names])
    photo_bytes = []
    for scene in SCENES:
        buffer = BytesIO()
        sample_photo(scene).save(buffer, "JPEG", quality=90)
        photo_bytes.append(buffer.getvalue())
    photos = run(runner, image, photo_bytes)
    single = [names.index(scene) for scene in SCENES]
    by_photo = photos @ videos[single].T  # each photo against each one-scene video
    for i, scene in enumerate(SCENES):
        best = SCENES[int(np.argmax(by_photo[i]))]
        assert best == scene, (scene, dict(zip(SCENES, by_photo[i].round(3), strict=True)))
    two = videos[names.index("chelsea+rocket")]
    ranked = [SCENES[j] for j in np.argsort(-(photos @ two))]
    assert set(ranked[:2]) == {"chelsea", "rocket"}, ranked


def test_streamer_run_indexes_a_clip(clips: dict[str, bytes], tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clips["coffee"])
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--topology", "video", str(clip), "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "STREAMER_BATCH_CALIBRATE": "off",
             "STREAMER_STACK_STATE_DIR": str(tmp_path / "no-stack")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    *rows, summary = [json.loads(line) for line in proc.stdout.splitlines()]
    assert summary["ok"] == 1 and summary["errors"] == 0
    assert rows[0]["topology"] == "video" and rows[0]["dim"] == 1280


def test_each_segment_is_the_unit_mean_of_its_own_frames_embedded_as_photos(
    plans: tuple[Plan, Plan], runner: Runner, clips: dict[str, bytes]
) -> None:
    image, video = plans
    context = Context(FetchSettings(), device="cpu", video=VideoSettings(segment_s=2.0))
    segmented = bind(VIDEO, None, context)
    parts: dict[int, tuple[Part, ...]] = {}
    (out,) = asyncio.run(runner.run(segmented, [clips["chelsea+rocket"]], first=1, parts=parts))
    (plain,) = run(runner, video, [clips["chelsea+rocket"]])
    assert np.allclose(out, plain, atol=1e-5)  # the video's own vector is unchanged
    decoder = VideoDecoder(VideoSettings(), min_side=EFFNET_LITE0.resize_side())
    frames = decoder.decode(clips["chelsea+rocket"])
    each = run(runner, image, [Image.fromarray(f) for f in frames.frames], first=2)
    assert [(p.key, p.metadata) for p in parts[0]] == [
        ("s0", {"start_s": 0.0, "end_s": 2.0}),
        ("s1", {"start_s": 2.0, "end_s": 4.0}),
    ]
    for k, part in enumerate(parts[0]):
        mine = [i for i, t in enumerate(frames.times_s) if k * 2.0 <= t < (k + 1) * 2.0]
        expected = each[mine].mean(axis=0)
        expected /= np.linalg.norm(expected)
        assert float(part.vector @ expected) >= 0.9999
    assert float(parts[0][0].vector @ parts[0][1].vector) < float(parts[0][0].vector @ out)
