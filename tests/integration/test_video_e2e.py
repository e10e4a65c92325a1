"""Videos on the real stack: each upload becomes one unit vector in the photos' space, every bad
kind of video a dead letter (stage decode, or fetch for one over the byte cap), and searches
cross media: a photo finds the video of its scene, a video the photos of its scenes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from operators.fetch import path_to_uri
from streamer.config.settings import settings_env
from streamer.core.messages import UploadMessage
from streamer.demo.samples import sample_photo
from streamer.demo.video import write_video
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_ingest_e2e import _consume

pytestmark = pytest.mark.integration

LIMITS = {
    "STREAMER_VIDEO_MAX_DURATION_S": "6",
    "STREAMER_VIDEO_MAX_PIXELS": "500000",
    "STREAMER_VIDEO_MAX_BYTES": "1500000",
}


def _bad_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad kind of video: its file and the stage of its dead letter."""
    (folder / "report.mp4").write_bytes(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n" * 30)
    whole = write_video(folder / "whole.mp4", [sample_photo("coffee")]).read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    writer = cv2.VideoWriter(
        str(folder / "blank.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 8, (64, 48)
    )
    writer.release()  # a container and no frame
    long = [Image.new("RGB", (320, 240), (i * 40, 90, 160)) for i in range(5)]
    write_video(folder / "long.mp4", long, seconds_each=2.0, size=(160, 120))  # 10 s > 6 s
    write_video(folder / "huge.mp4", [sample_photo("rocket")], size=(1280, 720))  # 921,600 px
    (folder / "heavy.mp4").write_bytes(bytes(4) + b"ftypisom" + os.urandom(1_600_000))
    return {
        "report": (folder / "report.mp4", "decode"),
        "cut": (folder / "cut.mp4", "decode"),
        "blank": (folder / "blank.avi", "decode"),
        "long": (folder / "long.mp4", "decode"),
        "huge": (folder / "huge.mp4", "decode"),
        "heavy": (folder / "heavy.mp4", "fetch"),
    }


def test_videos_index_search_across_media_and_bad_ones_are_dead_letters(
    scenario: Scenario,
) -> None:
    media = scenario.media
    photos = {}
    for name in ("chelsea", "rocket", "coffee"):
        photos[name] = media / f"{name}.jpg"
        sample_photo(name).save(photos[name], "JPEG", quality=90)
    cat = write_video(media / "cat.mp4", [sample_photo("chelsea")])
    two = write_video(media / "two.mp4", [sample_photo("chelsea"), sample_photo("rocket")])
    bad = _bad_videos(media)
    uploads = [
        *(UploadMessage(id=f"photo-{n}", uri=path_to_uri(p)) for n, p in photos.items()),
        UploadMessage(id="video-cat", uri=path_to_uri(cat)),
        UploadMessage(id="video-two", uri=path_to_uri(two)),
        *(UploadMessage(id=f"bad-{n}", uri=path_to_uri(p)) for n, (p, _) in bad.items()),
    ]
    assert all(u.media_type == ("image" if u.id.startswith("photo") else "video") for u in uploads)
    kafka = scenario.settings.kafka
    asyncio.run(publish(kafka, uploads))
    worker = scenario.start_worker(**LIMITS)

    wait_for(
        "the videos and photos",
        lambda: (scenario.count("video"), scenario.count("image")) == (2, 3),
    )
    letters = asyncio.run(_consume(scenario, kafka.deadletter_topic, len(bad)))
    stages = {m.key.decode(): dict(m.headers)["x-error-stage"].decode() for m in letters}
    assert stages == {f"bad-{n}": stage for n, (_, stage) in bad.items()}, scenario.worker_logs()
    causes = {m.key.decode(): dict(m.headers)["x-error-message"].decode() for m in letters}
    assert "not a video" in causes["bad-report"]
    assert "cannot open" in causes["bad-cut"]
    assert "no frames" in causes["bad-blank"]
    assert "over 6 s" in causes["bad-long"]
    assert "pixels, over 500000" in causes["bad-huge"]
    assert "over 1500000" in causes["bad-heavy"]
    assert worker.poll() is None, scenario.worker_logs()

    collection = scenario.collection("video")
    rows = scenario.store.read_rows(collection, ["video-cat", "video-two"], with_vectors=True)
    for row in rows.values():
        assert row.vector is not None and row.vector.shape == (1280,)
        assert float(np.linalg.norm(row.vector)) == pytest.approx(1.0, abs=1e-4)
        assert row.media_type == "video"
    scenario.wait_searchable(collection)
    scenario.wait_searchable(scenario.collection("image"))

    async def ask() -> tuple[object, object, object]:
        async with SearchClient(kafka, timeout_s=120) as client:
            by_photo = await client.search(image_path=photos["chelsea"], topology="video")
            by_video = await client.search(video_path=two, topology="image", top_k=3)
            own = await client.search(video_path=cat, top_k=2)
            return by_photo, by_video, own

    by_photo, by_video, own = asyncio.run(ask())
    for result in (by_photo, by_video, own):
        assert result.error is None, result.error  # type: ignore[attr-defined]
    assert [h.id for h in by_photo.hits] == ["video-cat", "video-two"]  # type: ignore[attr-defined]
    found = [h.id for h in by_video.hits]  # type: ignore[attr-defined]
    assert set(found[:2]) == {"photo-chelsea", "photo-rocket"}, found
    assert own.topology == "video" and own.hits[0].id == "video-cat"  # type: ignore[attr-defined]

    env = {**os.environ, **settings_env(scenario.settings)}
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "search", "--video", str(cat), "--topology", "image",
         "--top-k", "1", "--json"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [h["id"] for h in json.loads(proc.stdout)["hits"]] == ["photo-chelsea"]
